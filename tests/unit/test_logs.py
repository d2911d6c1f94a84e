"""Per-branch log files: every record reaches its branch's file, with few files open at a time."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from alignment.logs import BranchLogFiles, branch_scope, run_logging
from alignment.names import branch_file_stem

log = logging.getLogger("alignment.test")


def test_records_reach_their_branch_files_with_a_bounded_number_open(tmp_path: Path) -> None:
    branches = [f"topic/{index}" for index in range(BranchLogFiles.OPEN_FILES + 4)]
    before = set(os.listdir("/proc/self/fd"))
    with run_logging("INFO", tmp_path):
        for round_ in ("first", "second"):
            for branch in branches:
                with branch_scope(branch):
                    log.info("%s record of %s", round_, branch)
            assert len(set(os.listdir("/proc/self/fd")) - before) <= BranchLogFiles.OPEN_FILES
        log.info("outside any branch: no file")
    assert set(os.listdir("/proc/self/fd")) - before == set()
    for branch in branches:
        lines = (tmp_path / f"{branch_file_stem(branch)}.log").read_text(encoding="utf-8").splitlines()
        assert [line.split(": ", 1)[1] for line in lines] == [f"first record of {branch}", f"second record of {branch}"]
    assert len(list(tmp_path.iterdir())) == len(branches)
