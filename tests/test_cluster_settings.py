"""PARLEY_REDIS_CLUSTER: what it needs, and the one line `parley` says when it is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.settings import Settings, UnsafeSettingsError
from tests.fixtures.commands import run_parley

pytestmark = pytest.mark.mode_independent

CLUSTER_NODE = "redis://10.0.0.5:7000"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_cluster_with_a_broker_of_its_own_is_accepted() -> None:
    for broker in ("amqp://guest:guest@rabbit:5672//", "redis://10.0.0.9:6379/0"):
        s = settings(redis_url=CLUSTER_NODE, redis_cluster=True, broker_url=broker)
        assert s.effective_broker_url == broker
        assert s.redis_cluster_partitions == 16


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({}, "needs PARLEY_REDIS_URL"),
        ({"redis_url": CLUSTER_NODE}, "needs PARLEY_BROKER_URL"),
        ({"redis_url": CLUSTER_NODE, "broker_url": "redis://10.0.0.5:7000/0"}, "BROKER_URL"),
        ({"redis_url": "redis://10.0.0.5/0", "broker_url": "redis://10.0.0.5:6379/1"}, "BROKER"),
        ({"redis_url": "redis://10.0.0.5:7000/2", "broker_url": "amqp://rabbit//"}, "database"),
    ],
    ids=["no-redis", "no-broker", "broker-is-the-node", "same-server-default-port", "db-2"],
)
def test_a_cluster_without_what_it_needs_is_refused(values: dict[str, str], says: str) -> None:
    with pytest.raises(UnsafeSettingsError, match=says):
        settings(redis_cluster=True, **values)


def test_without_the_cluster_setting_the_broker_may_be_the_redis() -> None:
    s = settings(redis_url=CLUSTER_NODE)
    assert s.redis_cluster is False
    assert s.effective_broker_url == CLUSTER_NODE


def test_parley_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    env = {"PARLEY_REDIS_CLUSTER": "true", "PARLEY_REDIS_URL": CLUSTER_NODE}
    for command in ("serve", "worker"):
        done = run_parley(env, command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("parley: PARLEY_REDIS_CLUSTER=true needs PARLEY_BROKER_URL")
