"""The plans and their limits: the one place every limit is read from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

PlanName = Literal["free", "plus"]


@dataclass(frozen=True)
class Limits:
    """What a plan allows."""

    max_group_members: int
    parse_jobs_per_day: int


PLANS: dict[PlanName, Limits] = {
    "free": Limits(max_group_members=50, parse_jobs_per_day=100),
    "plus": Limits(max_group_members=5_000, parse_jobs_per_day=10_000),
}


class Limit(Enum):
    """A limit that a service checks, with the words its 402 answer names it by."""

    GROUP_MEMBERS = ("max_group_members", "members in a group")
    PARSE_JOBS_PER_DAY = ("parse_jobs_per_day", "parse jobs a day")

    def __init__(self, field: str, words: str) -> None:
        self.field = field
        self.words = words

    def of(self, plan: PlanName) -> int:
        """This limit's value on `plan`."""
        value: int = getattr(PLANS[plan], self.field)
        return value


# Subscription statuses in which the customer keeps `plus`: a failed renewal (`past_due`)
# keeps the plan until Stripe gives up and cancels the subscription.
PAID_STATUSES = frozenset({"active", "trialing", "past_due"})


def plan_for(status: str) -> PlanName:
    """The plan a Stripe subscription status grants (`none`: never subscribed)."""
    return "plus" if status in PAID_STATUSES else "free"
