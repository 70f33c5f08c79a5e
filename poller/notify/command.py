"""The command receiver: a program run without a shell, the notification's JSON on its stdin.

``argv`` is executed as it is (no shell: a device name in the JSON can never become a command),
in its own process group and session, with a small environment (PATH, HOME, LANG, LC_ALL, TZ,
the receiver's ``env``, and WARDTUI_NOTIFY_KEY / WARDTUI_NOTIFY_STATUS): the service's own
variables (a Redis password in WARDTUI_REDIS, say) are not a notification script's business.

Exit 0: sent. Another exit status: retryable, with the first line of its stderr (cleaned) in
the error. Past ``timeout`` the whole process group is killed (a script's children too) and
the attempt is retryable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal

from poller.notify.model import DeliveryError, Notification
from poller.notify.receiver_config import CommandConfig
from poller.text import clean

PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
STDERR_KEPT = 4096  # bytes of stderr read for the message; the rest is read and dropped


class CommandReceiver:
    kind = "command"

    def __init__(self, config: CommandConfig) -> None:
        self.name = config.name
        self.config = config

    def __repr__(self) -> str:
        return f"CommandReceiver({self.name!r}, {self.config.argv[0]!r})"

    def environment(self, notification: Notification) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env.setdefault("PATH", os.defpath)
        env.update(self.config.env)
        env["WARDTUI_NOTIFY_KEY"] = notification.key
        env["WARDTUI_NOTIFY_STATUS"] = notification.status
        return env

    async def send(self, notification: Notification) -> None:
        argv = self.config.argv
        body = json.dumps(notification.to_dict()).encode("ascii") + b"\n"
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, env=self.environment(notification), start_new_session=True)
        except OSError as exc:  # gone, or no longer executable, since the file was checked
            raise DeliveryError(f"cannot run {clean(argv[0])}: {exc.strerror}") from None
        try:
            status, stderr = await asyncio.wait_for(_talk(process, body), self.config.timeout)
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            raise DeliveryError(f"{clean(argv[0])} did not finish within {self.config.timeout:g} s: "
                                "killed with its process group") from None
        except BaseException:  # cancelled (the service stops): leave nothing running behind
            _kill_group(process.pid)
            raise
        if status != 0:
            said = first_line(stderr)
            reason = f"signal {-status}" if status < 0 else f"exit status {status}"
            raise DeliveryError(f"{clean(argv[0])} failed ({reason})" + (f": {said}" if said else ""))

    async def aclose(self) -> None:
        return None


async def _talk(process: asyncio.subprocess.Process, body: bytes) -> tuple[int, bytes]:
    assert process.stdin is not None and process.stderr is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it need not read its stdin
        process.stdin.write(body)
        await process.stdin.drain()
    process.stdin.close()
    kept = b""
    while chunk := await process.stderr.read(65536):
        if len(kept) < STDERR_KEPT:
            kept += chunk[: STDERR_KEPT - len(kept)]
    return await process.wait(), kept


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def first_line(stderr: bytes) -> str:
    """The first non-blank line of ``stderr``, decoded leniently, cleaned, at most 300 chars."""
    for line in stderr.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            text = clean(line.strip())
            return text[:300] + ("..." if len(text) > 300 else "")
    return ""
