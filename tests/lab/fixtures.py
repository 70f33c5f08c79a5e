"""The ``lab`` pytest fixture: one network-namespace lab per session, or a clear skip.

Lab tests need root, ``ip`` and ``nft``. On a developer machine without them the tests
are skipped with the reason; under CI (``CI=true``) a missing requirement is a failure,
so a misconfigured runner cannot turn the lab suite green by skipping all of it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.lab.netns import Lab


def missing_requirements() -> list[str]:
    """What this machine lacks for the lab, as human-readable reasons (empty: all there)."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("not running as root (network namespaces and raw ICMP need it)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            missing.append(f"'{tool}' not found on PATH")
    return missing


def require_lab() -> None:
    """Skip (or, under CI, fail) the calling test when the lab cannot be built here."""
    missing = missing_requirements()
    if not missing:
        return
    reason = "network-namespace lab unavailable: " + "; ".join(missing)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: lab tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A built :class:`Lab`; torn down at the end of the session even after failures."""
    require_lab()
    with Lab() as built:
        yield built
