"""The move journal: appended records, the latest per branch, lines cut by a crash, runs of earlier versions."""

from __future__ import annotations

import json
import os
from pathlib import Path

from alignment.journal import Move, MoveJournal

OLD, NEW = "a" * 40, "b" * 40


def test_moves_are_appended_to_one_file_per_process_not_a_file_each(tmp_path: Path) -> None:
    """Creating a file costs as much as a git round trip here; a record costs an append."""
    journal = MoveJournal(tmp_path / "moves")
    for branch in ("x", "y", "z"):
        journal.record(Move(branch, OLD, NEW))
    assert [path.name for path in (tmp_path / "moves").iterdir()] == [f"{os.getpid()}.jsonl"]
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
    path = tmp_path / "moves" / f"{os.getpid()}.jsonl"
    with path.open("a") as handle:
        handle.write('{"branch": "y", "old_tip": "')  # the process died here, before moving y
    journal.record(Move("z", OLD, NEW))
    assert [move.branch for move in journal.moves()] == ["x", "z"]


def test_a_run_of_an_earlier_version_with_a_file_per_move_is_read(tmp_path: Path) -> None:
    moves = tmp_path / "moves"
    moves.mkdir()
    (moves / "feature%2Fx.json").write_text(json.dumps({"branch": "feature/x", "old_tip": OLD, "new_tip": NEW}))
    assert MoveJournal(moves).moves() == [Move("feature/x", OLD, NEW)]
