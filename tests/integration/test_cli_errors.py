"""The CLI as an operator meets it: clear errors, exit codes, nothing started on bad input, help."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from poller.inventory import load_inventory

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def run(*args: str, cwd: Path, env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (), python: str = sys.executable,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(cwd / "xdg"),
                "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    return subprocess.run([*prefix, python, "-m", "wardtui", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout


BAD_CSV = """\
name,address,branch,region,type,parent,interval
core,127.0.0.1,dc,core,router,,
r1,300.1.2.3,b1,north,router,core,
r2,10.0.0,b1,north,router,core,
r3,bad host!,b1,north,router,core,
core,127.0.0.5,dc,core,router,,
r6,127.0.0.1,b2,south,router,core,
r7,127.0.0.7,b2,south,router,nowhere,
r8,127.0.0.8,b2,south,router,core,often
"""
BAD_LINES = {3: "300.1.2.3", 4: "10.0.0", 5: "bad host!", 6: "duplicate name", 7: "duplicate address",
             8: "nowhere", 9: "often"}


def test_bad_inventory_exits_2_lists_every_problem_and_starts_nothing(tmp_path: Path) -> None:
    inventory = tmp_path / "bad.csv"
    inventory.write_text(BAD_CSV, encoding="utf-8")
    db = tmp_path / "db" / "history.db"
    proc = run("poll", "--inventory", "bad.csv", "--jsonl", "--duration", "1",
               "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_no_traceback(proc)
    problem_lines = [line for line in proc.stderr.splitlines() if "bad.csv:" in line]
    for line, words in BAD_LINES.items():
        assert any(f"bad.csv:{line}:" in p and words in p for p in problem_lines), (line, proc.stderr)
    assert len(problem_lines) == len(BAD_LINES)
    assert "nothing was started" in proc.stderr
    assert proc.stdout == ""  # no events, no summary
    assert not db.exists() and not db.parent.exists()
    assert not (tmp_path / "xdg").exists()


def test_bad_yaml_inventory_for_the_dashboard_also_exits_2(tmp_path: Path) -> None:
    inventory = tmp_path / "net.yaml"
    inventory.write_text("devices:\n  - name: a\n    address: 127.0.0.1\n    branch: b\n"
                         "    region: r\n    type: router\n    parent: a\n", encoding="utf-8")
    db = tmp_path / "h.db"
    proc = run("--inventory", str(inventory), "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert proc.returncode == 2
    assert_no_traceback(proc)
    assert f"{inventory}:2:" in proc.stderr and "cycle" in proc.stderr
    assert not db.exists()


def test_missing_inventory_file(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    proc = run("poll", "--inventory", "absent.csv", "--jsonl", "--duration", "1",
               "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert proc.returncode == 2
    assert_no_traceback(proc)
    assert "absent.csv" in proc.stderr and "cannot read" in proc.stderr
    assert not db.exists()


def test_inventory_in_a_legacy_encoding_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "latin1.csv").write_bytes(b"name,address,branch,region,type\n"
                                          b"r1,127.0.0.1,S\xe3o Paulo,r,router\n")
    db = tmp_path / "h.db"
    proc = run("poll", "--inventory", "latin1.csv", "--jsonl", "--duration", "1",
               "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert proc.returncode == 2
    assert_no_traceback(proc)
    assert "latin1.csv:2:" in proc.stderr and "UTF-8" in proc.stderr
    assert not db.exists()


@pytest.mark.parametrize(("file", "content"), [
    ("nul.csv", b"name,address,branch,region,type\nr1,127.0.0.1,b,r,router\nr2,127.0.0.2,b\x00x,r,router\n"),
    ("nul.yaml", b'- {name: r1, address: 127.0.0.1, branch: b, region: r, type: router}\n'
                 b'- {name: r2, address: 127.0.0.2, branch: "b\\0x", region: r, type: router}\n'),
])
def test_a_nul_in_the_inventory_is_its_line_not_a_database_error(tmp_path: Path, file: str,
                                                                  content: bytes) -> None:
    """Issue 12: PostgreSQL failed the start with an encoding error that blamed the database.
    The inventory is refused first, naming the line; the database is never contacted."""
    (tmp_path / file).write_bytes(content)
    proc = run("poll", "--inventory", file, "--jsonl", "--duration", "1",
               "--db", "postgresql://postgres@127.0.0.1:1/never_contacted", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_no_traceback(proc)
    line = 3 if file.endswith(".csv") else 2
    first = proc.stderr.splitlines()[0]
    assert first == (f"wardtui: {file}:{line}: control character U+0000 (NUL) in 'branch': "
                     "remove it (names are shown on terminals)"), proc.stderr
    assert "postgres" not in proc.stderr and "database" not in proc.stderr
    assert not (tmp_path / "xdg").exists()


def test_generate_writes_rows_that_load(tmp_path: Path) -> None:
    proc = run("generate", "--devices", "1000", "-o", "f.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    devices = load_inventory(tmp_path / "f.csv")
    assert len(devices) == 1000
    assert all(d.address.startswith("127.") for d in devices)
    assert len({d.address for d in devices}) == 1000


def test_generate_to_stdout_and_bad_count(tmp_path: Path) -> None:
    proc = run("generate", "--devices", "25", cwd=tmp_path)
    assert proc.returncode == 0
    assert len(proc.stdout.strip().splitlines()) == 26  # header + rows
    bad = run("generate", "--devices", "0", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--devices" in bad.stderr
    assert_no_traceback(bad)


@pytest.mark.parametrize("args", [("--help",), ("poll", "--help")])
def test_help_shows_examples(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 0
    text = proc.stdout
    assert "examples:" in text
    example_lines = [line.strip() for line in text.split("examples:", 1)[1].splitlines()
                     if line.strip().startswith("wardtui")]
    assert len(example_lines) >= 2
    assert any("poll" in line and "--inventory" in line and "--jsonl" in line for line in example_lines)
    assert "--inventory" in text and "--db" in text


def test_bad_option_value_is_a_usage_error(tmp_path: Path) -> None:
    proc = run("poll", "--jsonl", "--interval", "-3", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--interval" in proc.stderr
    assert_no_traceback(proc)


# -- ICMP not permitted ----------------------------------------------------------------------

def _nobody_python(workdir: Path) -> tuple[str, dict[str, str]] | None:
    """An interpreter user nobody can execute, with the venv's packages on its path."""
    prefix = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    site = sysconfig.get_paths()["purelib"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [(sys.executable, {}), (shutil.which(version) or "", {"PYTHONPATH": f"{REPO}:{site}"})]
    for python, env in candidates:
        if not python:
            continue
        check = subprocess.run([*prefix, python, "-c", "import icmplib, yaml, sqlalchemy, poller"],
                               cwd=workdir, env={**os.environ, "PYTHONPATH": str(REPO), **env},
                               capture_output=True, text=True, timeout=30)
        if check.returncode == 0:
            return python, env
    return None


@pytest.fixture
def world_writable_dir() -> Iterator[Path]:
    """A directory user nobody can reach and write (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="wardtui-nobody-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_unprivileged_user_gets_a_short_message_naming_both_fixes(world_writable_dir: Path) -> None:
    ci = os.environ.get("CI") == "true"
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        (pytest.fail if ci else pytest.skip)("needs root and setpriv to run the CLI as user nobody")
    group_range = Path("/proc/sys/net/ipv4/ping_group_range").read_text().split()
    low, high = int(group_range[0]), int(group_range[1])
    if low <= NOBODY <= high:
        pytest.skip(f"ping_group_range {low} {high} lets nobody ping: nothing to refuse")
    found = _nobody_python(world_writable_dir)
    if found is None:
        (pytest.fail if ci else pytest.skip)("no Python interpreter user nobody can run")
    python, env = found
    work = world_writable_dir
    inventory = work / "net.csv"
    inventory.write_text("name,address,branch,region,type\nr1,127.0.0.1,b,r,router\n", encoding="utf-8")
    inventory.chmod(0o644)
    db = work / "history.db"
    prefix = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    proc = run("poll", "--inventory", str(inventory), "--jsonl", "--duration", "1",
               "--db", f"sqlite:///{db}", cwd=work, env=env, prefix=prefix, python=python)
    assert proc.returncode != 0
    assert_no_traceback(proc)
    assert "setcap cap_net_raw+ep" in proc.stderr
    assert "ping_group_range" in proc.stderr
    # Said once: it read "wardtui: wardtui cannot open an ICMP socket".
    assert proc.stderr.startswith("wardtui: cannot open an ICMP socket: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 6  # short: what is wrong and how to fix it
    assert proc.stdout == ""
    assert not db.exists()  # nothing was started


def test_a_credentials_file_owned_by_another_user_stops_the_start_in_one_line(tmp_path: Path) -> None:
    """As ssh refuses a key someone else owns: root must not use another user's 0600 file."""
    if os.geteuid() != 0:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("needs root (chown, raw ICMP)")
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type,snmp_credential\nr1,127.0.0.1,b,r,router,lab\n",
                         encoding="utf-8")
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("lab:\n  version: 2c\n  community: c0mmunity-secret\n", encoding="utf-8")
    credentials.chmod(0o600)
    os.chown(credentials, NOBODY, NOBODY)
    link = tmp_path / "link.yaml"
    link.symlink_to(credentials)
    db = tmp_path / "h.db"
    for given in (credentials, link):
        proc = run("poll", "--inventory", "net.csv", "--jsonl", "--duration", "1",
                   "--credentials", str(given), "--db", f"sqlite:///{db}", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert_no_traceback(proc)
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
        assert f"owned by nobody (uid {NOBODY}), not by the user running wardtui" in proc.stderr
        assert "c0mmunity-secret" not in proc.stderr and proc.stdout == ""
        assert not db.exists()


def test_good_inventory_polls_and_exits_0(tmp_path: Path) -> None:
    """The counterpart of the error cases: the same command line with a good inventory works."""
    if os.geteuid() != 0:
        (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)("needs root for raw ICMP")
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\nr1,127.0.0.1,b,r,router\n"
                         "r2,127.0.0.2,b,r,router\n", encoding="utf-8")
    db = tmp_path / "h.db"
    proc = run("poll", "--inventory", "net.csv", "--jsonl", "--duration", "1", "--interval", "0.2",
               "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    ups = [r for r in records if r["type"] == "transition" and r["to"] == "up"]
    assert {r["device"] for r in ups} == {"r1", "r2"}
    assert not [r for r in records if r["type"] == "transition" and r["to"] == "down"]
    assert db.exists()


def test_unprivileged_user_polls_over_ping_sockets_where_the_sysctl_allows(world_writable_dir: Path) -> None:
    """Datagram (ping) sockets, not raw: in a namespace whose ping_group_range admits nobody."""
    ci = os.environ.get("CI") == "true"
    if os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("ip") is None:
        (pytest.fail if ci else pytest.skip)("needs root, ip and setpriv (network namespace, user nobody)")
    found = _nobody_python(world_writable_dir)
    if found is None:
        (pytest.fail if ci else pytest.skip)("no Python interpreter user nobody can run")
    python, env = found
    work = world_writable_dir
    inventory = work / "net.csv"
    inventory.write_text("name,address,branch,region,type\n"
                         + "".join(f"r{i},127.0.0.{i},b,r,router\n" for i in range(1, 6)), encoding="utf-8")
    inventory.chmod(0o644)
    ns = f"wtdgram{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                        "net.ipv4.ping_group_range=0 2147483647"], check=True)
        prefix = ("ip", "netns", "exec", ns, "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                  "--clear-groups")
        proc = run("poll", "--inventory", str(inventory), "--jsonl", "--duration", "2", "--interval", "0.5",
                   "--db", f"sqlite:///{work}/history.db", cwd=work, env=env, prefix=prefix, python=python)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    ups = {r["device"] for r in records if r["type"] == "transition" and r["to"] == "up"}
    assert ups == {f"r{i}" for i in range(1, 6)}
    summaries = [r for r in records if r["type"] == "summary"]
    assert all(s["sent"] >= 3 and s["received"] == s["sent"] for s in summaries)


@pytest.mark.parametrize(("db", "code", "says"), [
    ("sqlite:////proc/wardtui-nope/h.db", 2, "No such file or directory"),
    ("postgresql://postgres@127.0.0.1/wardtui_no_such_database", 1, "does not exist"),
    ("NOT-A-DB", 1, "file is not a database"),
])
def test_unusable_history_database_is_a_clear_error(tmp_path: Path, db: str, code: int, says: str) -> None:
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\nr1,127.0.0.1,b,r,router\n", encoding="utf-8")
    if db == "NOT-A-DB":
        db = str(inventory)  # an existing file that is not SQLite
    proc = run("poll", "--inventory", str(inventory), "--jsonl", "--duration", "1", "--db", db, cwd=tmp_path)
    assert proc.returncode == code
    assert says in proc.stderr and proc.stderr.startswith("wardtui: ")
    assert_no_traceback(proc)
    assert proc.stdout == ""  # nothing was polled


def test_options_before_the_subcommand_are_kept(tmp_path: Path) -> None:
    """`wardtui --db X --interval 5 poll ...` must not fall back to the default database."""
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\nr1,127.0.0.1,b,r,router\n", encoding="utf-8")
    db = tmp_path / "chosen.db"
    proc = run("--db", f"sqlite:///{db}", "--interval", "5", "poll", "--inventory", str(inventory),
               "--jsonl", "--duration", "1.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert db.exists()
    summary = [json.loads(line) for line in proc.stdout.splitlines() if '"summary"' in line]
    assert summary[0]["sent"] == 1  # one check in 1.5 s: the 5 s interval was honoured


def test_a_password_in_the_db_url_is_never_printed(tmp_path: Path) -> None:
    proc = run("poll", "--jsonl", "--duration", "1", "--db", "postgresql://noc:s3cret@127.0.0.1/x",
               cwd=tmp_path)
    assert proc.returncode == 1  # no such role: the server refused it
    assert "s3cret" not in proc.stderr + proc.stdout
    assert "noc:***@" in proc.stderr


def test_confirmation_cannot_be_switched_off_by_accident(tmp_path: Path) -> None:
    proc = run("poll", "--jsonl", "--confirm-probes", "0", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--confirm-probes" in proc.stderr and "at least 1" in proc.stderr


def test_reader_going_away_stops_polling_and_still_flushes_history(tmp_path: Path) -> None:
    """`wardtui poll ... | head`: no traceback, exit 0, and every check made is in the history."""
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type\n"
                         + "".join(f"r{i},127.0.0.{i},b,r,router\n" for i in range(1, 6)), encoding="utf-8")
    db = tmp_path / "h.db"
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    proc = subprocess.Popen([sys.executable, "-m", "wardtui", "poll", "--inventory", str(inventory),
                             "--db", f"sqlite:///{db}", "--interval", "0.2", "--jsonl", "--checks"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    printed = 0
    while printed < 40:  # read until 40 checks were printed (about 1.6 s), then go away
        line = proc.stdout.readline()
        assert line.startswith(b"{"), line
        printed += b'"type": "check"' in line
    proc.stdout.close()  # the reader goes away, like `head` does
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("wardtui kept running after its reader went away")
    stderr = proc.stderr.read().decode()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT count(*) FROM checks").fetchone()[0]
    # Every check that was printed is in the history: the last batch was flushed at exit.
    assert stored >= printed


@pytest.mark.parametrize(("option", "value"), [
    ("--interval", "nan"), ("--interval", "inf"), ("--interval", "1e-9"), ("--interval", "1e9"),
    ("--timeout", "nan"), ("--timeout", "-inf"), ("--confirm-spacing", "0"), ("--flap-window", "nan"),
    ("--spool-max-mb", "nan"), ("--spool-max-mb", "inf"), ("--snmp-interval", "1e12"),
    ("--snmp-timeout", "nan"), ("--duration", "nan"), ("--duration", "inf")])
def test_number_options_are_finite_and_within_their_range(option: str, value: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: --timeout nan never stopped, --interval nan ran no check and exited 0,
    --interval 1e-9 busy-looped, --duration nan exited at once. Each is a usage error now."""
    from wardtui.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["poll", "--jsonl", f"{option}={value}"])  # "=": -inf is a value
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert option in err and ("finite" in err or "between" in err or "greater than 0" in err), err


def test_the_documented_limits_themselves_are_accepted() -> None:
    from wardtui.cli import build_parser

    args = build_parser().parse_args(["poll", "--jsonl", "--interval", "0.01", "--timeout", "60",
                                      "--flap-window", "86400", "--spool-max-mb", "1", "--duration", "1e6"])
    assert (args.interval, args.timeout, args.flap_window, args.spool_max_mb) == (0.01, 60, 86400, 1)


@pytest.mark.parametrize("span", ["99999999999d", "999999d", "99999999h"])
def test_retention_beyond_a_century_is_a_usage_error(span: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: 99999999999d overflowed at parse; 999999d was accepted, then maintenance
    failed every 15 s for ever (before year 1) and retention never ran."""
    from wardtui.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["poll", "--jsonl", "--keep-raw", span])
    assert info.value.code == 2 and "at most 36500d" in capsys.readouterr().err


def test_spans_too_far_back_and_unwritable_outputs_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-dir").mkdir()
    cases = [("outages", "--since", "99999999d"), ("history", "r1", "--since", "9999999999d"),
             ("report", "--from", "99999999d"),
             ("generate", "--devices", "5", "-o", str(tmp_path / "a-dir")),
             ("generate", "--devices", "5", "-o", "/proc/version"),
             ("generate", "--devices", "5", "-o", str(tmp_path / "missing" / "x.csv"))]
    for args in cases:
        proc = run(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_no_traceback(proc)
        assert len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
    # A reader that stops early (| head) is not an error.
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    piped = subprocess.run(f"{sys.executable} -m wardtui generate --devices 20000 | head -2", shell=True,
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert piped.stdout.startswith("name,address,") and len(piped.stdout.splitlines()) == 2
    assert piped.stderr == "", piped.stderr


def test_read_only_commands_leave_the_disk_as_it_was(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    current = run("db", "current", "--db", f"sqlite:///{missing}", cwd=tmp_path)
    assert (current.returncode, current.stdout[:35]) == (0, "none (no database file yet; head is"), current
    assert not (tmp_path / "nonexistent").exists()
    for args in (("outages",), ("history", "r1"), ("report", "--from", "1d"), ("snmp", "r1")):
        proc = run(*args, "--db", f"sqlite:///{missing}", cwd=tmp_path)
        assert proc.returncode == 1, (args, proc.stderr)
        assert_no_traceback(proc)
        assert proc.stderr == f"wardtui: no history at {missing}: wardtui has not run with it yet\n", args
        assert not (tmp_path / "nonexistent").exists(), args
    assert not (tmp_path / "xdg").exists()


def test_a_directory_as_the_database_is_named_as_one(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    for args in (("db", "current"), ("db", "upgrade"), ("outages",), ("report", "--from", "1d"),
                 ("poll", "--jsonl", "--duration", "1")):
        for db in (str(folder), f"sqlite:///{folder}"):
            proc = run(*args, "--db", db, cwd=tmp_path)
            assert proc.returncode == 2, (args, proc.stderr)
            assert_no_traceback(proc)
            assert proc.stderr == (f"wardtui: --db {db}: {folder} is a directory, not a SQLite database "
                                   "file\n"), (args, proc.stderr)
    assert list(folder.iterdir()) == []
