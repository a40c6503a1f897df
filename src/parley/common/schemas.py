"""Base schemas: camelCase on the wire, snake_case in Python."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel

T = TypeVar("T")


class CamelModel(BaseModel):
    """A schema whose JSON keys are camelCase, built from ORM objects by attribute name."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        from_attributes=True,
        serialize_by_alias=True,
    )


class RequestModel(CamelModel):
    """A request body: camelCase keys only; unknown keys are refused, not silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_by_name=False, from_attributes=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL cannot store NUL in text; refuse it in both modes alike.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text must not contain NUL characters")
        return value


class Page(CamelModel, Generic[T]):
    """One page of a list, with the cursor for the next page (null at the end)."""

    items: list[T]
    next_cursor: str | None = None
