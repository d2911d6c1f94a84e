"""Scratch directories: this tool's own temporary folders, marked as ours and held while their owner lives.

``create_scratch`` writes a marker file naming that very directory and holds an exclusive ``flock`` on
``alive`` in it for as long as its process runs (or until ``release``). A later run removes a marked
directory whose ``alive`` it can lock (``housekeeping.sweep``): its owner died. A name proves nothing: a
directory without our marker, or held by a live process, is never touched.

A run keeps its worktrees in one (in the system's temporary directory); a process that probes
merges keeps their throwaway objects in one (in ``memory_dir``).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

SCRATCH_PREFIX = "alignment-"
MARKER = ".alignment-scratch"
_MARKER_HEADER = "scratch directory of a branch alignment run, removed by a later run once this run is gone:\n"
_held: dict[Path, int] = {}
MEMORY_ROOM = 1 << 30
SHARED_MEMORY = Path("/dev/shm")  # noqa: S108 (directories in it are made by mkdtemp: private, unpredictable names)


def create_scratch(run_id: str, parent: Path | None = None) -> Path:
    """A new scratch directory for run ``run_id``, marked as this tool's and held until ``release``."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}-", dir=parent)).resolve()
    hold(scratch)  # before the marker: a sweep that sees the marker must also see the hold
    (scratch / MARKER).write_text(f"{_MARKER_HEADER}{scratch}\n", encoding="utf-8")
    return scratch


def is_scratch(path: Path) -> bool:
    """Whether ``path`` is a scratch directory this tool created: its marker names the directory itself."""
    try:
        return (path / MARKER).read_text(encoding="utf-8") == f"{_MARKER_HEADER}{path.resolve()}\n"
    except (OSError, UnicodeDecodeError):
        return False


def hold(scratch_dir: Path) -> None:
    """Mark ``scratch_dir`` as belonging to a live run until ``release``."""
    descriptor = os.open(scratch_dir / "alive", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    _held[scratch_dir] = descriptor


def release(scratch_dir: Path) -> None:
    descriptor = _held.pop(scratch_dir, None)
    if descriptor is not None:
        os.close(descriptor)


def is_alive(scratch_dir: Path) -> bool:
    """Whether a run still holds ``scratch_dir`` (False when its owner is gone)."""
    try:
        descriptor = os.open(scratch_dir / "alive", os.O_RDWR)
    except OSError:
        return False
    try:  # shared: two runs probing one dead run at once must both see it dead
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def memory_dir() -> Path:
    """Where files that are written often and thrown away soon go: ``/dev/shm`` (memory) when it exists, is
    writable and has room (at least ``MEMORY_ROOM`` free: a container's default 64 MB is too little), else
    the system's temporary directory. Measured: a merge's loose objects written to disk here cost ~10 ms of
    system time, in memory under 1 ms."""
    try:
        room = os.statvfs(SHARED_MEMORY)
    except OSError:
        return Path(tempfile.gettempdir())
    if os.access(SHARED_MEMORY, os.W_OK | os.X_OK) and room.f_bavail * room.f_frsize >= MEMORY_ROOM:
        return SHARED_MEMORY
    return Path(tempfile.gettempdir())


def scratch_places() -> list[Path]:
    """Everywhere a scratch directory may be: the temporary directory and ``/dev/shm`` (even when it has too
    little room for new ones now: a dead process's may still be there)."""
    places = {Path(tempfile.gettempdir()), memory_dir()}
    if SHARED_MEMORY.is_dir():
        places.add(SHARED_MEMORY)
    return sorted(places)
