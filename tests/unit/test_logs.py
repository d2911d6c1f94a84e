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


def test_a_message_of_several_lines_keeps_its_breaks_indented_and_escapes_the_rest(tmp_path: Path) -> None:
    """A failed check's output is logged as lines, not as one line of ``\\n``; a terminal escape stays escaped."""
    with run_logging("INFO", tmp_path), branch_scope("topic"):
        log.info("`make check` exited 2; its output:\n%s", "one\r\ntwo \x1b[2J\n")
        log.info("next record")
    lines = (tmp_path / "topic.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4
    assert lines[0].endswith(" INFO alignment.test: `make check` exited 2; its output:")
    assert lines[1:3] == ["    one", "    two \\x1b[2J"]
    assert lines[3].endswith(" INFO alignment.test: next record")
