"""Records kept on disk until the end of a run: read back as written, never lost, nothing left behind."""

from __future__ import annotations

import errno
import gc
import os
from pathlib import Path

import pytest

from alignment.spill import Spilled, SpillFile


def test_records_are_read_back_as_written_from_a_file_no_one_sees(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path)
    records = [f"record {number} ".encode() * number for number in range(200)]
    kept = [spill.keep(record) for record in records]
    assert all(isinstance(where, Spilled) for where in kept)
    assert [spill.read(where) for where in reversed(kept)] == records[::-1]
    assert list(tmp_path.iterdir()) == []  # an unnamed file: nothing to clean up, even after a crash


def test_a_record_that_cannot_be_written_is_kept_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = SpillFile(tmp_path / "removed")
    assert gone.read(gone.keep(b"first")) == b"first"
    spill = SpillFile(tmp_path)
    before = spill.keep(b"before")

    def full_disk(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "pwrite", full_disk)
        during = spill.keep(b"during")
    after = spill.keep(b"after")
    assert during == b"during"
    assert [spill.read(where) for where in (before, during, after)] == [b"before", b"during", b"after"]
    assert spill._file is not None
    spill._file.close()  # as the interpreter's exit does
    assert spill.keep(b"at exit") == b"at exit"


def test_a_short_write_is_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: write(fd, data[:3], offset))
    spill = SpillFile(tmp_path)
    kept = [spill.keep(b"0123456789"), spill.keep(b"abcdefg")]
    assert [spill.read(where) for where in kept] == [b"0123456789", b"abcdefg"]


def test_the_file_goes_with_its_spill(tmp_path: Path) -> None:
    spill = SpillFile(tmp_path)
    spill.keep(b"x")
    assert spill._file is not None
    descriptor = spill._file.fileno()
    os.fstat(descriptor)
    del spill
    gc.collect()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(descriptor)
