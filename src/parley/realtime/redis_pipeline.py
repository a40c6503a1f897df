"""Many script calls in one round trip per server, on one Redis or on a Redis Cluster.

A cluster pipeline sends each call to the master of its keys' slot (every call's keys share
one slot), and refuses redis-py's own script helpers; so calls go out as plain `EVALSHA`,
and a server that does not know a script yet (a new node, a promoted replica, a restart)
gets it loaded and the refused calls sent again. A refused call did nothing, so sending it
again is safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

RedisClient: TypeAlias = "redis.Redis | RedisCluster"
Arg: TypeAlias = str | bytes | int | float


@dataclass(frozen=True)
class ScriptCall:
    """One call of a registered script."""

    script: AsyncScript
    keys: Sequence[str | bytes]
    args: Sequence[Arg]


async def run_scripts(client: RedisClient, calls: Sequence[ScriptCall]) -> list[Any]:
    """The replies of `calls`, in order; raises the first error any of them met.

    Calls to different servers run concurrently, so an error means that some calls may have
    run and others not: the callers' scripts are idempotent for that reason.
    """
    if not calls:
        return []
    replies = await _pipeline(client, calls)
    refused = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if refused:
        for script in {id(calls[i].script): calls[i].script for i in refused}.values():
            await client.script_load(script.script)  # on every master of a cluster
        again = await _pipeline(client, [calls[i] for i in refused])
        for i, reply in zip(refused, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _pipeline(client: RedisClient, calls: Sequence[ScriptCall]) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.execute_command("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies
