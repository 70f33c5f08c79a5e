"""Shared pytest fixtures for the whole test suite."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

# The network-namespace lab (tests marked ``lab``); see tests/lab/netns.py.
from tests.lab.fixtures import lab  # noqa: F401


@pytest.fixture(autouse=True)
def _collector_as_it_was() -> Iterator[None]:
    """The dashboard's process policy tunes the process-wide garbage collector once its first
    round is done (wardtui/process.py, ProcessPolicy.first_round_done); a test that ran one must
    not leave it tuned for the rest."""
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
