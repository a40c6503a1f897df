"""FastAPI dependencies for the lifespan resources, as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from parley.db.engine import Database
from parley.resources import Resources
from parley.settings import Settings


async def get_resources(conn: HTTPConnection) -> Resources:  # async: no thread-pool hop
    """The resources opened by the app's lifespan."""
    resources: Resources = conn.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_settings_dep(resources: ResourcesDep) -> Settings:
    """The app's settings."""
    return resources.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for one request.

    It ends before the response is sent (scope "function"), and ending it waits until the
    events its commits carry are published: a client's next request cannot overtake them.
    """
    resources: Resources = request.app.state.resources
    async with resources.db.session() as session:
        yield session


async def get_database(request: Request) -> Database:
    """The app's database, for a route that opens its sessions itself (or none at all)."""
    resources: Resources = request.app.state.resources
    return resources.db


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
