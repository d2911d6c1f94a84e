"""The reports folder's layout: listing runs by how far they got, and the one atomic write."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from alignment.cli import main as cli
from alignment.errors import FileProblem
from alignment.journal import Move, MoveJournal, PutBack
from alignment.runs import (
    PLAN_FILE,
    RECORD_FIELDS,
    RESULTS_FILE,
    RunFolder,
    RunState,
    list_runs,
    read_run_file,
    write_atomically,
)
from alignment.session import unfinished_runs


def made_run(reports: Path, run_id: str, output: str | None) -> RunFolder:
    folder = RunFolder(reports, run_id)
    folder.write_record({"run_id": run_id, "repository": "/r", "scratch_dir": "/s"})
    if output is not None:
        write_atomically(folder.path / output, json.dumps({"overall_summary": {"total_successful": 1}}))
    return folder


def test_runs_are_listed_oldest_first_with_how_far_each_got(tmp_path: Path) -> None:
    made_run(tmp_path, "20260102T000000Z-bbbbbb", PLAN_FILE)
    made_run(tmp_path, "20260101T000000Z-aaaaaa", RESULTS_FILE)
    made_run(tmp_path, "20260103T000000Z-cccccc", None)
    (tmp_path / "runs" / "not-a-run").mkdir()  # no record: not listed
    runs = list_runs(tmp_path)
    assert [(run.run_id, run.state) for run in runs] == [
        ("20260101T000000Z-aaaaaa", RunState.FINISHED),
        ("20260102T000000Z-bbbbbb", RunState.PLANNED),
        ("20260103T000000Z-cccccc", RunState.UNFINISHED),
    ]
    assert [dict(run.summary()) for run in runs] == [{"total_successful": 1}, {"total_successful": 1}, {}]
    assert runs[0].folder.record()["repository"] == "/r"
    assert list_runs(tmp_path / "nowhere") == []


def test_an_atomic_write_leaves_only_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "file.json"
    write_atomically(path, "old")
    write_atomically(path, "new")
    assert path.read_text() == "new"
    assert [item.name for item in path.parent.iterdir()] == ["file.json"]


def test_latest_points_at_the_run_folder(tmp_path: Path) -> None:
    first, second = RunFolder(tmp_path, "one"), RunFolder(tmp_path, "two")
    for folder in (first, second):
        folder.path.mkdir(parents=True)
        folder.point_latest()
    assert (tmp_path / "latest").resolve() == second.path.resolve()
    assert sorted(item.name for item in tmp_path.iterdir()) == ["latest", "runs"]


def test_latest_that_is_not_a_symlink_stays_and_the_run_still_publishes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = RunFolder(tmp_path, "one")
    folder.latest.mkdir(parents=True)
    folder.point_latest()
    assert folder.latest.is_dir()
    assert not folder.latest.is_symlink()
    assert [item.name for item in tmp_path.iterdir()] == ["latest"]  # no stray .latest-XXXX
    assert f"{folder.latest} is not a symlink: left as it is, not pointed at run one" in caplog.text


def test_a_refused_run_folder_goes_unless_it_journaled_a_move(tmp_path: Path) -> None:
    never_started, moved = made_run(tmp_path, "one", None), made_run(tmp_path, "two", None)
    MoveJournal(moved.moves_dir).record(Move("feature", "a" * 40, "b" * 40))
    for folder in (never_started, moved, RunFolder(tmp_path, "three")):  # "three" was never made
        folder.remove()
    assert [run.run_id for run in list_runs(tmp_path)] == ["two"]  # `alignment undo two` still works


def test_a_run_file_that_cannot_be_read_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    cases = [
        ("{", "expected a run's JSON object, got invalid JSON (Expecting property name enclosed in double quotes)"),
        (" \n", "expected a run's JSON object, got an empty file (cut short by a crash or power cut?)"),
        ("[]", "top level: expected a run's JSON object, got a list"),
        ('{"repository": "/r"}', "scratch_dir: required field is missing"),
        ('{"repository": 5, "scratch_dir": null}', "repository: expected a string, got a number"),
        ('{"repository": "/r", "scratch_dir": null}', "scratch_dir: expected a string, got null"),
    ]
    for text, problem in cases:
        path.write_text(text)
        with pytest.raises(FileProblem) as raised:
            read_run_file(path, RECORD_FIELDS)
        assert str(raised.value) == f"{path}: {problem}"
    with pytest.raises(FileProblem, match=r"run\.json: cannot be read \(\[Errno 2\] No such file"):
        read_run_file(tmp_path / "nowhere" / "run.json", RECORD_FIELDS)
    finished = made_run(tmp_path, "one", RESULTS_FILE)
    (finished.path / RESULTS_FILE).write_text("")
    with pytest.raises(FileProblem, match=f"{RESULTS_FILE}: expected a run's JSON object, got an empty file"):
        list_runs(tmp_path)[0].summary()
    (finished.path / RESULTS_FILE).write_text('{"overall_summary": []}')
    with pytest.raises(FileProblem, match="overall_summary: expected an object, got a list"):
        list_runs(tmp_path)[0].summary()


def test_a_run_that_died_says_what_it_has_moved_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The next run's note and `alignment runs` agree; an undo hint only where there is something to undo."""
    nothing, moved, undone = (made_run(tmp_path, f"2026010{day}T000000Z-000000", None) for day in (1, 2, 3))
    move = Move("feature", "a" * 40, "b" * 40)
    MoveJournal(moved.moves_dir).record(move)
    MoveJournal(undone.moves_dir).record(replace(move, put_back=PutBack.UNDO))
    MoveJournal(nothing.moves_dir).record(replace(move, put_back=PutBack.RUN))  # its own teardown put it back
    assert unfinished_runs(tmp_path) == (
        f"run {nothing.run_id} did not finish; it moved nothing",
        f"run {moved.run_id} did not finish; it moved 1 branch to checked merges (`alignment undo {moved.run_id}` "
        "puts them back)",
        f"run {undone.run_id} did not finish; it moved 1 branch, put back since by `alignment undo`",
    )
    assert cli(["runs", "--reports-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{nothing.run_id}  did not finish; 0 branches moved  /r",
        f"{moved.run_id}  did not finish; 1 branch moved  /r",
        f"{undone.run_id}  did not finish; 0 branches moved, 1 undone  /r",
    ]
