"""`wardtui doctor`'s judgements that the machine running the tests cannot show (it runs as
root with a large rmem_max): the receive buffer against the device count."""

from __future__ import annotations

from wardtui.cli.doctor import PROBER_RCVBUF, Finding, check_rmem


def test_a_small_rmem_max_warns_for_many_devices_and_names_the_sysctl() -> None:
    found = check_rmem(875, rmem_max=212_992, forced=False)
    assert found.status == "warn"
    assert "416 KiB" in found.detail and "875 devices" in found.detail and "rcvbuf_drops" in found.detail
    assert found.fix.startswith(f"sudo sysctl -w net.core.rmem_max={PROBER_RCVBUF}")


def test_a_small_rmem_max_is_enough_for_a_few_devices() -> None:
    assert check_rmem(100, rmem_max=212_992, forced=False).status == "ok"


def test_rmem_max_does_not_matter_when_the_buffer_size_is_forced() -> None:
    found = check_rmem(100_000, rmem_max=212_992, forced=True)
    assert found.status == "ok" and "SO_RCVBUFFORCE" in found.detail


def test_the_cap_the_prober_asks_for_is_enough_at_any_size() -> None:
    # 4 MiB is doubled by the kernel: the 8 MiB the prober asks for.
    assert check_rmem(1_000_000, rmem_max=PROBER_RCVBUF // 2, forced=False).status == "ok"
    assert check_rmem(1_000_000, rmem_max=PROBER_RCVBUF // 2 - 1, forced=False).status == "warn"


def test_a_fix_is_shown_on_the_line_only_when_not_ok() -> None:
    assert Finding("x", "ok", "fine", "do this").line() == "ok    x: fine"
    assert Finding("x", "fail", "broken", "do this").line() == "FAIL  x: broken -> fix: do this"
