"""The ``alignment`` command: undo a run, list runs. (Aligning itself is ``pytest alignment/ ...``.)"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from alignment.errors import AlignmentError
from alignment.journal import Outcome
from alignment.runs import RunState, list_runs
from alignment.session import moves_made
from alignment.undo import undo_run

_MARKS = {
    Outcome.RESTORED: "restored",
    Outcome.NOT_MOVED: "unchanged",
    Outcome.MOVED_SINCE: "REFUSED",
    Outcome.CHECKED_OUT: "REFUSED",
    Outcome.FAILED: "FAILED",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alignment", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    undo = commands.add_parser("undo", help="put back every branch a run moved")
    undo.add_argument("run_id")
    undo.add_argument("--reports-dir", type=Path, default=Path("reports"))
    undo.add_argument("--repo", help="the repository (default: the one the run aligned)")
    undo.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing")
    runs = commands.add_parser("runs", help="list runs, newest last")
    runs.add_argument("--reports-dir", type=Path, default=Path("reports"))
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "undo":
            return _undo(arguments.reports_dir, arguments.run_id, arguments.repo, arguments.dry_run)
        return _runs(arguments.reports_dir)
    except AlignmentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _undo(reports_dir: Path, run_id: str, repo: str | None, dry_run: bool) -> int:
    report = undo_run(reports_dir, run_id, repo_path=repo, dry_run=dry_run)
    for item in report.restorations:
        print(f"{_MARKS[item.outcome]:>9}  {item.message}")
    counts = {outcome: sum(item.outcome is outcome for item in report.restorations) for outcome in Outcome}
    verb = "would restore" if dry_run else "restored"
    print(
        f"run {run_id}: {verb} {counts[Outcome.RESTORED]}, unchanged {counts[Outcome.NOT_MOVED]}, "
        f"refused {len(report.refused)} of {len(report.restorations)} moved branches in {report.repository}"
    )
    return 1 if report.refused else 0


def _runs(reports_dir: Path) -> int:
    for run in list_runs(reports_dir):
        summary = run.summary()
        if run.state is RunState.FINISHED:
            ok, failed, skipped = (summary[key] for key in ("total_successful", "total_failed", "total_not_run"))
            state = f"{ok} ok, {failed} failed, {skipped} not run"
        elif run.state is RunState.PLANNED:
            state = f"plan: {summary['total_successful']} would align, {summary['total_failed']} would fail"
        else:
            state = "did not finish"
        print(f"{run.run_id}  {state}; {moves_made(run.folder)} moved  {run.record()['repository']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
