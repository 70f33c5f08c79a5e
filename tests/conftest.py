"""Shared pytest fixtures for the whole test suite."""

from __future__ import annotations

# The network-namespace lab (tests marked ``lab``); see tests/lab/netns.py.
from tests.lab.fixtures import lab  # noqa: F401
