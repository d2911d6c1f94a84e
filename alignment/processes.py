"""Running child processes: no shell, their own process group, and the whole group killed on a timeout.

``run_process`` runs git (for the git adapter); ``run_check`` runs the check commands of error detection. A
child is killed with its group on timeout and also when the caller is interrupted (Ctrl-C, pytest-timeout's
signal), so no process outlives the step that started it.

A check command is an arbitrary program, so on Linux it runs under ``alignment.supervisor``: that process
dies with its parent (a SIGKILLed worker), is a subreaper (a descendant that escaped the process group with
``setsid`` is still found and killed), applies the data-segment limit (``memory_limit_mb``) and kills
whatever the command left running when it ends. Only the tail of a check's output is kept
(``output_limit`` bytes of each stream): a check that prints without end costs no memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from alignment.errors import seconds

SUPERVISED = sys.platform.startswith("linux")
STOP_GRACE_SECONDS = 2.0  # how long the supervisor may take to kill a check's descendants before SIGKILL


@dataclass(frozen=True)
class Completed:
    """A finished process: exit code and captured output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    dropped: int = 0  # bytes of output not kept (``run_check`` keeps the tail)


class ProcessTimeout(Exception):
    """The process ran past ``timeout`` seconds; it and its process group were killed."""

    def __init__(self, argv: Sequence[str], timeout: float, stdout: bytes = b"", stderr: bytes = b"") -> None:
        super().__init__(f"{argv[0]} timed out after {seconds(timeout)} s")
        self.argv = tuple(argv)
        self.timeout = timeout
        self.stdout = stdout
        self.stderr = stderr


def run_process(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    stdin: bytes | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run ``argv`` to completion and capture its output; raise ``ProcessTimeout`` past ``timeout``."""
    process = _start(argv, cwd, env, with_stdin=stdin is not None)
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise ProcessTimeout(argv, timeout or 0.0) from None
    except BaseException:
        kill_group(process)
        raise
    return Completed(tuple(argv), process.returncode, stdout, stderr)


def run_check(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    timeout: float,
    env: Mapping[str, str],
    memory_limit_mb: int | None,
    output_limit: int,
) -> Completed:
    """Run a check command under the supervisor (Linux); keep the last ``output_limit`` bytes of each stream.

    Raises ``FileNotFoundError`` for a program that does not exist, ``ProcessTimeout`` past ``timeout``.
    On a timeout or an interruption the supervisor is asked to kill the command's whole tree first.
    """
    _require_program(argv[0], cwd, env)
    command = list(argv)
    if SUPERVISED:
        limit = str(memory_limit_mb or 0)
        command = [sys.executable, "-I", "-m", "alignment.supervisor", str(os.getpid()), limit, *command]
    process = _start(command, cwd, env, with_stdin=False)
    try:
        stdout, stderr, dropped = _read_tails(process, timeout, output_limit)
    except subprocess.TimeoutExpired:
        _stop_supervised(process)
        raise ProcessTimeout(argv, timeout) from None
    except BaseException:
        _stop_supervised(process)
        raise
    return Completed(tuple(argv), process.returncode, stdout, stderr, dropped)


def _start(
    argv: Sequence[str], cwd: str | Path | None, env: Mapping[str, str] | None, *, with_stdin: bool
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _read_tails(process: subprocess.Popen[bytes], timeout: float, limit: int) -> tuple[bytes, bytes, int]:
    """Drain stdout and stderr until both end and the process exits, keeping the last ``limit`` bytes of
    each; the bytes dropped are counted. ``subprocess.TimeoutExpired`` past ``timeout``."""
    assert process.stdout is not None
    assert process.stderr is not None
    ends = time.monotonic() + timeout
    tails = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    dropped = 0
    with selectors.DefaultSelector() as selector:
        for descriptor in tails:
            selector.register(descriptor, selectors.EVENT_READ)
        while selector.get_map():
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(process.args, timeout)
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                tail = tails[key.fd]
                tail += chunk
                if len(tail) > limit:
                    dropped += len(tail) - limit
                    del tail[: len(tail) - limit]
    stdout, stderr = bytes(tails[process.stdout.fileno()]), bytes(tails[process.stderr.fileno()])
    process.stdout.close()
    process.stderr.close()
    process.wait(timeout=max(ends - time.monotonic(), 0.001))
    return stdout, stderr, dropped


def _stop_supervised(process: subprocess.Popen[bytes]) -> None:
    """Ask the supervisor to kill the command's whole tree (SIGTERM); kill the group if it does not end.

    A supervisor that has ended killed every descendant before it did: its process group is not signalled
    then, as its id may already belong to another process. Interrupted while it waits (the branch's timeout
    signal can follow the check's own timeout at once: both come from the branch's deadline), it still kills
    the group and reaps the supervisor before the interruption goes on."""
    try:
        if SUPERVISED and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_GRACE_SECONDS)
    finally:
        if SUPERVISED and process.returncode is not None:
            _close_pipes(process)
        else:
            kill_group(process)


def program_found(program: str, path: str | None) -> bool:
    """Whether ``program``, named without a ``/``, is an executable on ``path`` (a ``PATH`` value; None: this
    process's), as ``exec`` looks for it: the one lookup of a check's program, when the configuration is read
    and before the supervisor execs it."""
    return shutil.which(program, path=path) is not None


def _require_program(program: str, cwd: str | Path | None, env: Mapping[str, str] | None) -> None:
    """Raise ``FileNotFoundError`` as ``Popen`` would, for a program the supervisor is about to exec."""
    if os.sep in program:
        found = os.access(Path(cwd or ".") / program, os.X_OK)
    else:
        found = program_found(program, (env if env is not None else os.environ).get("PATH"))
    if not found:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process`` and everything in its process group, then reap it.

    The pipes are closed rather than drained: a grandchild that left the group could hold them open forever.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    _close_pipes(process)
    process.wait()


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
