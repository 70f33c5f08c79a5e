"""`wardtui doctor` against real parts: SQLite files and the PostgreSQL server, a private
redis-server on a free loopback port, a lease held by another process, real files and modes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from store import schema
from store.db import database_url
from tests.integration.postgres import pg_url  # noqa: F401
from tests.integration.test_cli_errors import NOBODY, _nobody_python, world_writable_dir  # noqa: F401
from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
INVENTORY = ("name,address,branch,region,type,snmp_credential\n"
             "r1,127.0.0.1,b,r,router,lab\nr2,127.0.0.2,b,r,router,\n")
CHECKS = ["icmp", "rmem_max", "inventory", "credentials", "database", "lease", "redis", "clock"]


def _free_port() -> int:
    return free_port()  # not the kernel's pick: see tests/ports.py


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A redis-server of this module's own on a free loopback port, killed afterwards."""
    server = shutil.which("redis-server")
    if server is None:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def _heartbeat(redis_url: str, site: str, *, age: float = 0.5, host: str = "svc-host") -> None:
    from redis import Redis

    at = (datetime.now(UTC) - timedelta(seconds=age)).isoformat()
    doc = {"host": host, "pid": 4242, "version": "0.1.0", "started": at, "devices": 2, "snapshot_at": at}
    client = Redis.from_url(redis_url)
    try:
        client.set(f"wardtui:{{{site}}}:service", json.dumps(doc), ex=15)
    finally:
        client.close()


@contextmanager
def _live_service(redis_url: str, site: str) -> Iterator[None]:
    """A service's heartbeat, written again every half second as a running service keeps it fresh
    (every second): ``doctor`` calls a snapshot more than 5 s old stale, and it may take that long
    to reach its Redis check on a loaded machine."""
    _heartbeat(redis_url, site)
    done = threading.Event()

    def beat() -> None:
        while not done.wait(0.5):
            _heartbeat(redis_url, site)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    """A good setup: an inventory naming a credential, the credentials file at 0600, a
    migrated SQLite database."""
    (tmp_path / "net.csv").write_text(INVENTORY, encoding="utf-8")
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("lab:\n  version: 2c\n  community: not-shown\n")
    credentials.chmod(0o600)
    db = f"sqlite:///{tmp_path / 'h.db'}"
    asyncio.run(schema.upgrade(database_url(db)))
    return {"cwd": tmp_path, "db": db, "credentials": credentials}


def doctor(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {key: value for key, value in os.environ.items() if key not in ("WARDTUI_REDIS", "WARDTUI_DB")}
    full.update({"PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(cwd / "xdg"),
                 "XDG_CONFIG_HOME": str(cwd / "config"), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
    proc = subprocess.run([sys.executable, "-m", "wardtui", "doctor", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def lines(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each check's line, by check name."""
    found = {}
    for line in proc.stdout.splitlines():
        mark, _, rest = line.partition(" ")
        if mark in ("ok", "WARN", "FAIL"):
            found[rest.strip().split(":", 1)[0]] = line
    return found


def good_args(setup: dict[str, Any], redis_url: str, site: str) -> list[str]:
    return ["--inventory", "net.csv", "--db", setup["db"], "--credentials", str(setup["credentials"]),
            "--redis", redis_url, "--site", site]


def test_a_good_setup_passes_with_one_line_per_check(setup: dict[str, Any], redis_url: str) -> None:
    with _live_service(redis_url, "good"):
        proc = doctor(*good_args(setup, redis_url, "good"), cwd=setup["cwd"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = lines(proc)
    assert list(found) == CHECKS, proc.stdout
    for check in CHECKS:
        if check != "clock":  # this machine cannot tell: a warning, allowed
            assert found[check].startswith("ok  "), found[check]
    assert "2 devices" in found["inventory"] and "1 credential(s)" in found["credentials"]
    assert "schema 0012 (head)" in found["database"] and "no poller holds" in found["lease"]
    assert "wardtui serve 0.1.0 on svc-host (pid 4242), 2 devices" in found["redis"]
    assert "not-shown" not in proc.stdout


def test_json_is_a_list_of_checks(setup: dict[str, Any], redis_url: str) -> None:
    with _live_service(redis_url, "json"):
        proc = doctor(*good_args(setup, redis_url, "json"), "--json", cwd=setup["cwd"])
    assert proc.returncode == 0, proc.stdout
    data = json.loads(proc.stdout)
    assert [d["check"] for d in data] == CHECKS
    assert all(set(d) == {"check", "status", "detail", "fix"} for d in data)
    assert all(d["status"] in ("ok", "warn", "fail") for d in data)
    assert {d["check"]: d["status"] for d in data}["database"] == "ok"


def _fails(proc: subprocess.CompletedProcess[str], check: str, *fix: str) -> str:
    assert proc.returncode == 1, proc.stdout
    line = lines(proc)[check]
    assert line.startswith("FAIL  "), line
    for part in fix:
        assert part in line.partition(" -> fix: ")[2], line
    return line


def test_a_bad_database_url_fails_with_its_fix(setup: dict[str, Any], redis_url: str) -> None:
    args = good_args(setup, redis_url, "bad-db")
    args[args.index("--db") + 1] = "mysql://root:hunter2@db/x"
    line = _fails(doctor(*args, cwd=setup["cwd"]), "database", "--db sqlite:///PATH or postgresql://")
    assert "hunter2" not in line


def test_an_unreachable_postgresql_fails_and_never_shows_the_password(setup: dict[str, Any],
                                                                      redis_url: str) -> None:
    args = good_args(setup, redis_url, "pg-down")
    args[args.index("--db") + 1] = f"postgresql://postgres:hunter2@127.0.0.1:{_free_port()}/nothing"
    proc = doctor(*args, cwd=setup["cwd"])
    line = _fails(proc, "database", "start the server")
    assert "cannot connect" in line and "postgres:***@" in line
    assert "hunter2" not in proc.stdout + proc.stderr


def test_a_database_behind_head_fails_and_says_upgrade(setup: dict[str, Any], redis_url: str) -> None:
    asyncio.run(schema.downgrade(database_url(setup["db"]), "0005"))
    file = setup["cwd"] / "h.db"
    before = file.read_bytes()
    line = _fails(doctor(*good_args(setup, redis_url, "old"), cwd=setup["cwd"]), "database",
                  "wardtui db upgrade --db sqlite:///")
    assert "0005 (behind head 0012)" in line
    assert file.read_bytes() == before  # doctor never migrates


HOLDER = """
import asyncio, sys
from store.lease import Lease

async def main() -> None:
    lease = Lease(sys.argv[1], "serve")
    await lease.acquire()
    await lease.record()
    print("held", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await lease.release()

asyncio.run(main())
"""


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_a_held_lease_is_shown_and_is_not_a_failure(engine: str, setup: dict[str, Any], redis_url: str,
                                                     request: pytest.FixtureRequest) -> None:
    if engine == "postgresql":
        url = str(request.getfixturevalue("pg_url"))
        asyncio.run(schema.upgrade(url))
        setup = {**setup, "db": url.replace("+asyncpg", "")}
    else:
        url = database_url(setup["db"])
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with _live_service(redis_url, "held"):
            proc = doctor(*good_args(setup, redis_url, "held"), cwd=setup["cwd"])
        assert proc.returncode == 0, proc.stdout
        line = lines(proc)["lease"]
        assert line.startswith("ok  ")
        assert f"is polled by wardtui serve on {socket.gethostname()} (pid {holder.pid}) since " in line
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0


def test_an_unreachable_redis_fails_with_its_fix(setup: dict[str, Any]) -> None:
    args = good_args(setup, f"redis://:secretpw@127.0.0.1:{_free_port()}/0", "nobody-home")
    proc = doctor(*args, cwd=setup["cwd"])
    line = _fails(proc, "redis", "start redis-server", "--redis URL")
    assert "unreachable" in line and "secretpw" not in proc.stdout


def test_redis_from_the_environment_and_a_missing_or_stale_heartbeat_warn(setup: dict[str, Any],
                                                                           redis_url: str) -> None:
    args = good_args(setup, redis_url, "quiet")
    del args[args.index("--redis"):args.index("--redis") + 2]
    proc = doctor(*args, cwd=setup["cwd"], env={"WARDTUI_REDIS": redis_url})
    assert proc.returncode == 0
    assert lines(proc)["redis"].startswith("WARN") and "no service heartbeat" in lines(proc)["redis"]
    # A heartbeat whose host is hostile text: cleaned, and old: a stopped service.
    _heartbeat(redis_url, "stale", age=60, host="evil\x1b]0;pwned\x07host")
    proc = doctor(*good_args(setup, redis_url, "stale"), cwd=setup["cwd"])
    line = lines(proc)["redis"]
    assert proc.returncode == 0 and line.startswith("WARN") and "stopped publishing" in line
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "evil\ufffd]0;pwned\ufffdhost" in line


def test_a_credentials_file_readable_by_others_fails_with_chmod(setup: dict[str, Any],
                                                                redis_url: str) -> None:
    setup["credentials"].chmod(0o644)
    line = _fails(doctor(*good_args(setup, redis_url, "creds"), cwd=setup["cwd"]), "credentials",
                  f"chmod 600 {setup['credentials']}")
    assert "mode 0644" in line and "not-shown" not in line


def test_a_credential_the_inventory_names_but_the_file_lacks_fails(setup: dict[str, Any],
                                                                    redis_url: str) -> None:
    setup["credentials"].write_text("other:\n  version: 2c\n  community: not-shown\n")
    _fails(doctor(*good_args(setup, redis_url, "creds2"), cwd=setup["cwd"]), "credentials",
           "add it to", "snmp_credential")


def test_a_broken_inventory_fails_with_its_fix_and_no_control_characters(setup: dict[str, Any],
                                                                         redis_url: str) -> None:
    (setup["cwd"] / "net.csv").write_text("name,address,branch,region,type\nr1,300.1.2.3,b,r,router\n"
                                          "r\x1b[2J2,127.0.0.2,b,r,router\n", encoding="utf-8")
    proc = doctor(*good_args(setup, redis_url, "inv"), cwd=setup["cwd"])
    line = _fails(proc, "inventory", "correct the lines named")
    assert "net.csv:2" in line and "2 problem(s)" in line
    assert "\x1b" not in proc.stdout


def test_doctor_changes_nothing(tmp_path: Path, redis_url: str) -> None:
    """A database that does not exist is not made, no lease file appears, nothing is written."""
    (tmp_path / "net.csv").write_text(INVENTORY.replace(",lab\n", ",\n"), encoding="utf-8")
    db = tmp_path / "later" / "h.db"
    proc = doctor("--inventory", "net.csv", "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "no file yet" in lines(proc)["database"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.csv"]


def test_as_a_user_without_icmp_permission_it_fails_naming_both_fixes(
        world_writable_dir: Path) -> None:  # noqa: F811
    """User nobody, where ping_group_range leaves nobody out: the ICMP check fails with the
    setcap and sysctl fixes; everything else is still checked."""
    ci = os.environ.get("CI") == "true"
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        (pytest.fail if ci else pytest.skip)("needs root and setpriv to run as user nobody")
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    if low <= NOBODY <= high:
        pytest.skip(f"ping_group_range {low} {high} lets nobody ping: nothing to refuse")
    found = _nobody_python(world_writable_dir)
    if found is None:
        (pytest.fail if ci else pytest.skip)("no Python interpreter user nobody can run")
    python, env = found
    work = world_writable_dir
    (work / "net.csv").write_text(INVENTORY.replace(",lab\n", ",\n"), encoding="utf-8")
    (work / "net.csv").chmod(0o644)
    full = {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(work / "xdg"),
            "XDG_CONFIG_HOME": str(work / "config"), "PYTHONDONTWRITEBYTECODE": "1", **env}
    full.pop("WARDTUI_REDIS", None)
    proc = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python,
                           "-m", "wardtui", "doctor", "--inventory", "net.csv", "--db",
                           f"sqlite:///{work / 'h.db'}"], cwd=work, env=full, capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    line = _fails(proc, "icmp", "setcap cap_net_raw+ep", "ping_group_range")
    assert f"leaves out group {NOBODY}" in line
    assert list(lines(proc)) == CHECKS
    assert lines(proc)["rmem_max"].split()[0] in ("ok", "WARN")  # nobody has no CAP_NET_ADMIN
    assert "SO_RCVBUFFORCE" not in lines(proc)["rmem_max"]


def test_redis_given_before_the_command_is_checked_and_a_bad_url_fails(setup: dict[str, Any],
                                                                       redis_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CONFIG_HOME": str(setup["cwd"] / "config")}
    env.pop("WARDTUI_REDIS", None)
    with _live_service(redis_url, "before"):
        proc = subprocess.run([sys.executable, "-m", "wardtui", "--redis", redis_url, "--site", "before",
                               "doctor", "--inventory", "net.csv", "--db", setup["db"], "--credentials",
                               str(setup["credentials"])], cwd=setup["cwd"], env=env, capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert "site before: wardtui serve" in lines(proc)["redis"]
    args = good_args(setup, "http://user:pw-not-shown@example.invalid/", "x")
    proc = doctor(*args, cwd=setup["cwd"])
    assert "pw-not-shown" not in _fails(proc, "redis", "redis://HOST[:PORT][/DB]")
    assert "pw-not-shown" not in proc.stdout
