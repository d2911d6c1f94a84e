"""The benchmark's notes name the file system its repositories are on: it moves the per-branch cost. And the
benchmark times the harness as users run it: byte-compiled."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import bench.run
from bench.run import compile_harness, describe_filesystem, execute

MOUNTS = """/dev/vda / ext4 rw,relatime 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
/dev/loop0 /mnt/j ext4 rw,relatime 0 0
/dev/loop1 /mnt/j/inner xfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "journals", "described"),
    [
        ("/tmp/bench", [], "ext4 without a journal (`/`)"),
        ("/tmp/bench", ["vda-8"], "ext4 with a journal (`/`)"),
        ("/mnt/j/bench", ["loop0-8"], "ext4 with a journal (`/mnt/j`)"),
        ("/mnt/j/bench", ["vda-8"], "ext4 without a journal (`/mnt/j`)"),
        ("/mnt/j/inner/x", ["loop0-8"], "xfs (`/mnt/j/inner`)"),
        ("/dev/shm/x", [], "tmpfs (`/dev/shm`)"),
        ("/mnt/jj", ["loop0-8"], "ext4 without a journal (`/`)"),
    ],
)
def test_the_deepest_mount_holding_the_path_is_named_with_its_journal(
    path: str, journals: list[str], described: str
) -> None:
    assert describe_filesystem(Path(path), MOUNTS, journals) == described


def test_the_harness_is_byte_compiled_before_the_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # as on the benchmark's machine: imports save nothing
    monkeypatch.setattr(bench.run, "PROJECT", tmp_path)
    sources = [tmp_path / "alignment" / "steps.py", tmp_path / "plugins" / "front.py"]
    for source in sources:
        source.parent.mkdir()
        source.write_text("VALUE = 1\n")
    compile_harness()
    assert all(Path(importlib.util.cache_from_source(str(source))).is_file() for source in sources)


def test_the_timed_commands_may_save_bytecode_as_users_runs_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    done = execute([sys.executable, "-c", "import sys; print(sys.flags.dont_write_bytecode)"], None)
    assert (done.returncode, done.output.strip()) == (0, "0")
