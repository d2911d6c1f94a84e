"""The benchmark's notes name the file system its repositories are on: it moves the per-branch cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.run import describe_filesystem

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
