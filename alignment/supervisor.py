"""The parent of every check command on Linux: it keeps the command's whole process tree within the run.

Started by ``processes.run_check`` as ``python -I -m alignment.supervisor PARENT MEMORY_MB COMMAND...``.

- It follows its parent: ``PR_SET_PDEATHSIG`` sends it SIGTERM when the process that started it dies, so a
  SIGKILLed worker's checks stop with it. The command itself gets SIGKILL if the supervisor dies.
- It is a child subreaper (``PR_SET_CHILD_SUBREAPER``): a descendant that left the process group and
  lost its parent (``setsid daemon &``) is re-parented to the supervisor instead of to init, so it can
  still be found and killed.
- The command runs in the supervisor's process group, under a data-segment limit (``MEMORY_MB``; 0: none):
  ``RLIMIT_DATA`` counts the memory a program can write to, not address space it only reserves, which node
  (V8's code range) and java (the heap) reserve by gigabytes at start: under ``RLIMIT_AS`` they cannot start.
- When the command exits, and on SIGTERM (a timeout, Ctrl-C, the parent's death), it kills every descendant
  that is left, reaps them, and exits with the command's exit code (128 + N for a signal N).

Standard library only: it runs in a fresh interpreter for every check command.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_NOT_STARTED = 127  # the shell's code for a command that could not be run


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _children() -> list[int]:
    """This process's children, zombies included (``/proc``: a child's parent is field 4 of its ``stat``)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                if int(fields[1]) == me:
                    found.append(int(entry.name))
    return found


def kill_descendants() -> None:
    """SIGKILL and reap every descendant. Killing a child re-parents its own children here (a subreaper),
    so the loop ends only when none is left."""
    while children := _children():
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _exec_command(command: Sequence[str], memory_mb: int) -> None:
    """In the forked child: die with the supervisor, apply the memory limit, become the command."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if memory_mb > 0:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        os.execvp(command[0], list(command))  # noqa: S606 - never a shell: the configured argv as it is
    except OSError as error:
        os.write(2, f"{command[0]}: {error.strerror}\n".encode())
    os._exit(_NOT_STARTED)


def supervise(parent: int, memory_mb: int, command: Sequence[str]) -> int:
    """Run ``command`` to its end and leave no descendant behind; its exit code."""
    signal.signal(signal.SIGTERM, _terminate)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before it could be followed
        return 128 + signal.SIGTERM
    pid = os.fork()
    if pid == 0:
        _exec_command(command, memory_mb)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        kill_descendants()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main(argv: Sequence[str]) -> int:
    parent, memory_mb, *command = argv
    return supervise(int(parent), int(memory_mb), command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
