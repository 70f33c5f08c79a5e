"""Lease timings (poller/cluster/leases.py's LeaseConfig): defaults derived from the TTL, and
settings under which a poller could not keep its leases refused."""

from __future__ import annotations

import re

import pytest

from poller.cluster.leases import LeaseConfig, new_poller_id


def test_defaults_follow_the_ttl() -> None:
    config = LeaseConfig()
    assert (config.ttl, config.renew_interval, config.safety_margin) == (10.0, 10 / 3, 1.0)
    assert (config.member_age, config.op_timeout, config.max_moves) == (9.0, 10 / 3, 8)
    short = LeaseConfig(ttl=1.5)
    assert (short.renew_interval, short.safety_margin, short.member_age) == (0.5, 0.15, 1.35)
    tuned = LeaseConfig(ttl=30, renew_every=5, margin=4, member_ttl=20, timeout=2, max_moves=1)
    assert (tuned.renew_interval, tuned.safety_margin, tuned.member_age, tuned.op_timeout) == (5, 4, 20, 2)


@pytest.mark.parametrize(("settings", "message"), [
    ({"ttl": 0.05}, "lease TTL"),
    ({"ttl": 10, "margin": 10}, "safety margin"),
    ({"ttl": 10, "margin": 0}, "safety margin"),
    ({"ttl": 10, "renew_every": 5}, "renewable twice"),  # one missed renewal would lose every shard
    ({"ttl": 10, "member_ttl": 6}, "member TTL"),
    ({"max_moves": 0}, "max moves"),
    ({"timeout": 0}, "Redis timeout"),
])
def test_settings_that_could_not_keep_a_lease_are_refused(settings: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeaseConfig(**settings)


def test_poller_ids_are_host_pid_random_and_unique() -> None:
    ids = {new_poller_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[^:\s]+:\d+:[0-9a-f]{8}", i) for i in ids)
