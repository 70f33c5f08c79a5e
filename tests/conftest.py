"""Shared pytest fixtures for the whole test suite."""

from __future__ import annotations

import gc
import os
from collections.abc import Generator, Iterator

import pytest

from tests.alone import turn

# The network-namespace lab (tests marked ``lab``); see tests/lab/netns.py.
from tests.lab.fixtures import lab  # noqa: F401


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, tests marked ``alone`` come first (in their order), so they are handed
    out at the start, one after another: an ``alone`` test asked for later waits until every test
    running beside it has ended (a minute for the longest), and the other workers wait with it."""
    if "PYTEST_XDIST_WORKER" in os.environ:  # every worker sorts alike, as xdist requires
        items.sort(key=lambda item: item.get_closest_marker("alone") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item,
                            nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Under pytest-xdist, a test marked ``alone`` runs with no other test beside it (setup and
    teardown included); every other test runs beside any but those (tests/alone.py)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return (yield)
    directory = item.config._tmp_path_factory.getbasetemp().parent  # type: ignore[attr-defined]
    with turn(directory, exclusive=item.get_closest_marker("alone") is not None):
        return (yield)


@pytest.fixture(autouse=True)
def _collector_as_it_was() -> Iterator[None]:
    """The dashboard's process policy tunes the process-wide garbage collector once its first
    round is done (wardtui/process.py, ProcessPolicy.first_round_done); a test that ran one must
    not leave it tuned for the rest."""
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
