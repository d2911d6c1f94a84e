"""The ``alignment`` command's messages, as a new user meets them (away from the reports, one branch, help)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignment.cli import main as cli
from alignment.journal import Move, MoveJournal
from alignment.orchestrator import BranchAlignmentOrchestrator
from alignment.runs import PLAN_FILE, RunFolder
from alignment.session import unfinished_runs
from tests.conftest import Repo, entry, write_input
from tests.remotes import hook, make_origin


def test_undo_dry_run_rows_and_counts_of_one(repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    path = write_input(tmp_path / "in.json", [entry("feature")])
    run_id = str(BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(path, repo.path)["run_id"])
    assert cli(["undo", run_id, "--reports-dir", str(tmp_path / "reports"), "--dry-run"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("    ready  would restore 'feature' to ")
    assert rows[1].startswith(f"run {run_id}: would restore 1, unchanged 0, refused 0 of 1 moved branch in ")
    assert cli(["runs", "--reports-dir", str(tmp_path / "reports")]) == 0
    assert f"{run_id}  1 ok, 0 failed, 0 not run; 1 branch moved" in capsys.readouterr().out


def test_undo_counts_each_row_as_it_is_marked(repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A push back the remote refused is FAILED in its row and in the count, a branch moved since REFUSED."""
    origin = make_origin(repo, tmp_path)
    origin.run()
    origin.bare.commit("feature-c", {"later.txt": "l\n"})
    hook(origin, 'case "$1" in refs/heads/feature-b) exit 1;; esac\n')
    assert cli(["undo", origin.run_id, "--reports-dir", str(tmp_path / "reports")]) == 1
    rows = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in rows[:3]] == ["ok", "FAILED", "REFUSED"]
    assert rows[3].startswith(f"run {origin.run_id}: restored 1, unchanged 0, refused 1, failed 1 of 3 moved branches ")


def test_a_plan_that_did_not_finish_is_listed_as_a_plan(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its record says it predicted (``predict``): a dead ``--plan`` is not taken for a run that moved nothing."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    path = write_input(tmp_path / "in.json", [entry("feature")])
    plan_id = str(BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").plan(path, repo.path)["run_id"])
    (RunFolder(tmp_path / "reports", plan_id).path / PLAN_FILE).unlink()  # as if it had died before writing it
    assert cli(["runs", "--reports-dir", str(tmp_path / "reports")]) == 0
    assert capsys.readouterr().out.startswith(f"{plan_id}  plan: did not finish; 0 branches moved  ")


def test_away_from_the_reports_the_commands_say_where_to_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(["runs"]) == 2
    assert capsys.readouterr().err == (
        f"error: no runs in {tmp_path / 'reports'}: pass --reports-dir DIR, the directory your pytest runs wrote "
        "to (their --reports-dir, default reports/ where pytest was started)\n"
    )
    assert cli(["undo", "20260101T000000Z-000000"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {tmp_path / 'reports' / 'runs' / '20260101T000000Z-000000'}: no such run")
    assert "`alignment runs --reports-dir DIR`" in error
    assert "pass the --reports-dir your pytest run wrote to" in error


@pytest.mark.parametrize("given", ["../runs/{run_id}", "{run_id}/", "../../etc", "..", ".", ""])
def test_undo_refuses_a_run_id_that_is_a_path(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    """A path would reach outside ``<reports>/runs/``; ``../runs/<id>`` once undid that run by another name."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    path = write_input(tmp_path / "in.json", [entry("feature")])
    run_id = str(BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(path, repo.path)["run_id"])
    moved = repo.tip("feature")
    capsys.readouterr()
    given = given.format(run_id=run_id)
    assert cli(["undo", given, "--reports-dir", str(tmp_path / "reports")]) == 2
    assert capsys.readouterr() == (
        "",
        f"error: {given!r} is no run id: a run id is the name of a folder in {tmp_path / 'reports' / 'runs'}, "
        "as `alignment runs --reports-dir DIR` lists it (e.g. 20261125T101500Z-3fa9c1)\n",
    )
    assert repo.tip("feature") == moved


def test_every_argument_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["undo", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "run_id the run's id, as `alignment runs` lists it" in shown
    assert "--reports-dir DIR the reports directory the runs wrote to, pytest's --reports-dir" in shown


def test_an_option_a_command_does_not_have_is_refused_not_taken_as_an_abbreviation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(["runs", "--reports-dir", str(tmp_path), "--repo", str(tmp_path / "repo")])
    assert exited.value.code == 2
    assert f"unrecognized arguments: --repo {tmp_path / 'repo'}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["undo", "20260101T000000Z-000000", "--dry"])
    assert "unrecognized arguments: --dry" in capsys.readouterr().err


def test_an_unreadable_run_record_blocks_no_other_run(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A power cut leaves ``run.json`` empty (it is not fsync'd): that run is skipped with a warning where runs
    are listed or swept, and named in one line where it is asked for."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    reports = tmp_path / "reports"
    empty, blank = RunFolder(reports, "20260101T000000Z-000000"), RunFolder(reports, "20260101T000000Z-111111")
    empty.path.mkdir(parents=True)
    empty.record_path.write_text("")
    MoveJournal(empty.moves_dir).record(Move("feature", repo.tip("feature"), repo.tip("main")))
    blank.write_record({})
    assert unfinished_runs(reports) == (
        f"run {empty.run_id} skipped: {empty.record_path}: expected a run's JSON object, got an empty file (cut "
        f"short by a crash or power cut?); it moved 1 branch (`alignment undo {empty.run_id} --repo PATH` puts "
        "them back)",
        f"run {blank.run_id} skipped: {blank.record_path}: repository: required field is missing",
    )
    path = write_input(tmp_path / "in.json", [entry("feature")])
    run_id = str(BranchAlignmentOrchestrator(reports_dir=reports).run(path, repo.path)["run_id"])
    capsys.readouterr()
    assert cli(["runs", "--reports-dir", str(reports)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{run_id}  1 ok, 0 failed, 0 not run; 1 branch moved  ")
    assert captured.out.count("\n") == 1
    assert captured.err.splitlines() == [
        f"warning: run {empty.run_id} skipped: {empty.record_path}: expected a run's JSON object, got an empty "
        "file (cut short by a crash or power cut?)",
        f"warning: run {blank.run_id} skipped: {blank.record_path}: repository: required field is missing",
    ]
    assert cli(["undo", empty.run_id, "--reports-dir", str(reports)]) == 2
    assert capsys.readouterr().err == (
        f"error: {empty.record_path}: expected a run's JSON object, got an empty file (cut short by a crash or "
        "power cut?); pass --repo PATH, the repository the run aligned, to undo it anyway\n"
    )
    # with --repo its journal is read: 'feature' moved since (the later run moved it), so it is refused
    assert cli(["undo", empty.run_id, "--reports-dir", str(reports), "--repo", str(repo.path), "--dry-run"]) == 1
    assert capsys.readouterr().out.startswith("  REFUSED  'feature' moved again since ")
