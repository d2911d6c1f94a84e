"""Records a run keeps to its end, kept on disk until they are read back.

A run keeps something of every branch until it ends (its result, its JSON report entry): in memory that grows
with the number of branches, by about 1 KB a branch in the controlling process. ``SpillFile`` writes each
record to an unnamed temporary file in a folder of the caller's (the run's, on the reports' disk), so nothing
is left behind even by a crash, and keeps only where it is. A record that cannot be written (a full disk, a
folder that is gone) is kept in memory instead: spilling saves memory, it never loses a record.
"""

from __future__ import annotations

import os
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True, slots=True)
class Spilled:
    """Where a record is in its ``SpillFile``."""

    offset: int
    size: int


class SpillFile:
    """Append-only records in an unnamed temporary file in ``folder``, made on the first record and deleted
    when the ``SpillFile`` is."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._file: IO[bytes] | None = None
        self._end = 0
        self._lock = threading.Lock()

    def keep(self, record: bytes) -> Spilled | bytes:
        """Write ``record``; where it is, or the record itself when it could not be written."""
        with self._lock:
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile(dir=self._folder, buffering=0)  # noqa: SIM115 - closed below
                    weakref.finalize(self, self._file.close)
                written = 0
                while written < len(record):
                    written += os.pwrite(self._file.fileno(), record[written:], self._end + written)
            except (OSError, ValueError):  # ValueError: the file was closed (the interpreter is exiting)
                return record
            spilled = Spilled(self._end, len(record))
            self._end += len(record)
            return spilled

    def read(self, kept: Spilled | bytes) -> bytes:
        """The record ``keep`` kept."""
        if isinstance(kept, bytes):
            return kept
        with self._lock:
            assert self._file is not None  # a record was spilled into it
            parts = []
            done = 0
            while done < kept.size:
                part = os.pread(self._file.fileno(), kept.size - done, kept.offset + done)
                if not part:
                    raise OSError(f"the spill file ends before its record at {kept.offset}")
                parts.append(part)
                done += len(part)
        return b"".join(parts)
