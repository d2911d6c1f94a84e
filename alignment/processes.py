"""Running child processes: no shell, their own process group, and the whole group killed on a timeout.

Used by the git adapter and by the check commands of error detection. A child is killed with its group on
timeout and also when the caller is interrupted (Ctrl-C, pytest-timeout's signal), so no process outlives
the step that started it. A check command may run under an address-space limit (``memory_limit_mb``); the
limit is set by a tiny launcher instead of ``preexec_fn``, which is unsafe in threaded programs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_LIMIT_LAUNCHER = (
    "import os, resource, sys; limit = int(sys.argv[1]) * 1024 * 1024; "
    "resource.setrlimit(resource.RLIMIT_AS, (limit, limit)); os.execvp(sys.argv[2], sys.argv[2:])"
)


@dataclass(frozen=True)
class Completed:
    """A finished process: exit code and captured output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


class ProcessTimeout(Exception):
    """The process ran past ``timeout`` seconds; it and its process group were killed."""

    def __init__(self, argv: Sequence[str], timeout: float, stdout: bytes = b"", stderr: bytes = b"") -> None:
        super().__init__(f"{argv[0]} timed out after {timeout:g} s")
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
    memory_limit_mb: int | None = None,
) -> Completed:
    """Run ``argv`` to completion and capture its output; raise ``ProcessTimeout`` past ``timeout``."""
    command = list(argv)
    if memory_limit_mb is not None and sys.platform.startswith("linux"):
        _require_program(command[0], cwd, env)
        command = [sys.executable, "-c", _LIMIT_LAUNCHER, str(memory_limit_mb), *command]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise ProcessTimeout(argv, timeout or 0.0) from None
    except BaseException:
        kill_group(process)
        raise
    return Completed(tuple(argv), process.returncode, stdout, stderr)


def _require_program(program: str, cwd: str | Path | None, env: Mapping[str, str] | None) -> None:
    """Raise ``FileNotFoundError`` as ``Popen`` would, for a program the launcher is about to exec."""
    if os.sep in program:
        found = os.access(Path(cwd or ".") / program, os.X_OK)
    else:
        found = shutil.which(program, path=(env if env is not None else os.environ).get("PATH")) is not None
    if not found:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process`` and everything in its process group, then reap it.

    The pipes are closed rather than drained: a grandchild that left the group could hold them open forever.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    process.wait()
