"""Plan limits, checked by the services where they bite: group size and parse jobs a day.

Billing on or off is a property of the database the app opened: the app calls
`enforce_plan_limits(db)` when billing is on, and every session of that database then
checks limits. A session of any other database (billing off, scripts, workers) checks none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from parley.billing.models import BillingAccount
from parley.billing.plans import Limit, PlanName, plan_for
from parley.common.errors import PaymentRequired
from parley.db.engine import Database
from parley.db.locks import lock_row

_ENFORCED = "parley.billing.enforced"

Count = int | Callable[[], Awaitable[int]]
"""How many there would be after the change: a number, or a function that counts them
(called only while billing is on)."""


def enforce_plan_limits(db: Database) -> None:
    """Make every session of `db` check plan limits (billing is on)."""
    db.sessionmaker.configure(info={_ENFORCED: True})


def plan_limits_enforced(db: Database) -> bool:
    """True when the sessions of `db` check plan limits (see `enforce_plan_limits`)."""
    return bool(db.sessionmaker.kw.get("info", {}).get(_ENFORCED))


async def current_plan(session: AsyncSession, user_id: int) -> PlanName:
    """The plan `user_id` is on now (`free` without a billing account)."""
    status = await session.scalar(
        select(BillingAccount.status).where(BillingAccount.user_id == user_id)
    )
    return plan_for(status or "none")


async def check_limit(
    session: AsyncSession,
    user_id: int,
    limit: Limit,
    wanted: Count,
    *,
    serialize: tuple[InstrumentedAttribute[int], int] | None = None,
) -> None:
    """Raise PaymentRequired (402, naming the limit) when `wanted` is over `limit` on the plan
    of `user_id`. While billing is off nothing is checked (nor counted).

    `serialize` names the row that concurrent changes of the same count share, as (its id
    column, its id): it is locked until the transaction ends before anything is counted, so
    that two such changes cannot both count before either committed.
    """
    if not session.info.get(_ENFORCED):
        return
    if serialize is not None:
        await lock_row(session, *serialize)
    plan = await current_plan(session, user_id)
    allowed = limit.of(plan)
    count = wanted if isinstance(wanted, int) else await wanted()
    if count > allowed:
        raise PaymentRequired(f"over a limit of the {plan} plan: at most {allowed:,} {limit.words}")
