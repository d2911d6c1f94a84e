"""The move journal: appended records, the latest per branch, lines cut by a crash, runs of earlier versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from alignment.journal import Move, MoveJournal, journal_name

OLD, NEW = "a" * 40, "b" * 40


def test_moves_are_appended_to_one_file_per_process_not_a_file_each(tmp_path: Path) -> None:
    """Creating a file costs as much as a git round trip here; a record costs an append."""
    journal = MoveJournal(tmp_path / "moves")
    for branch in ("x", "y", "z"):
        journal.record(Move(branch, OLD, NEW))
    assert [path.name for path in (tmp_path / "moves").iterdir()] == [journal_name()]
    assert [move.branch for move in journal.moves()] == ["x", "y", "z"]


def test_the_latest_record_of_a_branch_counts(tmp_path: Path) -> None:
    journal = MoveJournal(tmp_path / "moves")
    journal.record(Move("x", OLD, NEW))
    journal.record(Move("y", OLD, NEW))
    journal.reject(Move("x", OLD, NEW))
    assert journal.get("x") is None
    assert journal.get("y") == Move("y", OLD, NEW)
    assert journal.moves() == [Move("y", OLD, NEW)]


def test_between_processes_files_the_later_record_counts(tmp_path: Path) -> None:
    moves = tmp_path / "moves"
    moves.mkdir()
    record = {"branch": "x", "old_tip": OLD, "new_tip": NEW, "rejected": False, "remote": None}
    (moves / "1.jsonl").write_text(json.dumps({**record, "rejected": True, "at": 2}) + "\n")
    (moves / "2.jsonl").write_text(json.dumps({**record, "at": 1}) + "\n")
    assert MoveJournal(moves).get("x") is None


def test_a_line_cut_short_by_a_crash_is_skipped_and_later_records_still_count(tmp_path: Path) -> None:
    journal = MoveJournal(tmp_path / "moves")
    journal.record(Move("x", OLD, NEW))
    path = tmp_path / "moves" / journal_name()
    with path.open("a") as handle:
        handle.write('{"branch": "y", "old_tip": "')  # the process died here, before moving y
    journal.record(Move("z", OLD, NEW))
    assert [move.branch for move in journal.moves()] == ["x", "z"]


def test_a_run_of_an_earlier_version_with_a_file_per_move_is_read(tmp_path: Path) -> None:
    moves = tmp_path / "moves"
    moves.mkdir()
    (moves / "feature%2Fx.json").write_text(json.dumps({"branch": "feature/x", "old_tip": OLD, "new_tip": NEW}))
    assert MoveJournal(moves).moves() == [Move("feature/x", OLD, NEW)]


def test_two_processes_with_one_host_name_and_pid_write_files_of_their_own() -> None:
    """Containers sharing a run folder reuse host names and process ids; on NFS their appends to one file
    would not be atomic."""
    code = (
        "import os, socket; os.getpid = lambda: 1; socket.gethostname = lambda: 'box'; "
        "from alignment.journal import journal_name; print(journal_name())"
    )
    names = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
             for _ in range(2)]  # fmt: skip
    assert names[0].startswith("box-1-")
    assert names[0] != names[1]
