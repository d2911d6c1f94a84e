"""The ``alignment`` command: undo a run, list runs, merge the results of shards, print the JSON Schema of
a file users write. (Aligning itself is ``pytest alignment/ ...``.)"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from alignment.errors import AlignmentError, FileProblem, UsageProblem, counted
from alignment.journal import Outcome, PutBack
from alignment.merge import merge_results
from alignment.report import html_name, write_results
from alignment.runs import RESULTS_FILE, RunEntry, RunState, list_runs
from alignment.schemas import SCHEMAS, schema_text
from alignment.session import moves_by_put_back
from alignment.undo import undo_run

EXIT_USAGE = 4
_DRY_RUN_MARKS = {Outcome.RESTORED: "ready"}  # the message says "would restore"; the mark says it can
_MARKS = {
    Outcome.RESTORED: "ok",  # the message says "restored"
    Outcome.NOT_MOVED: "unchanged",
    Outcome.MOVED_SINCE: "REFUSED",
    Outcome.CHECKED_OUT: "REFUSED",
    Outcome.FAILED: "FAILED",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alignment", description=__doc__, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)
    command = partial(commands.add_parser, allow_abbrev=False)  # `runs --repo R` is refused, not `--reports-dir R`
    reports_help = "the reports directory the runs wrote to, pytest's --reports-dir (default: reports)"
    undo = command("undo", help="put back every branch a run moved")
    undo.add_argument("run_id", help="the run's id, as `alignment runs` lists it (e.g. 20261125T101500Z-3fa9c1)")
    undo.add_argument("--reports-dir", type=Path, default=Path("reports"), metavar="DIR", help=reports_help)
    undo.add_argument("--repo", metavar="PATH", help="the repository (default: the one the run aligned)")
    undo.add_argument("--dry-run", action="store_true", help="say what would happen; change nothing")
    runs = command("runs", help="list runs, newest last")
    runs.add_argument("--reports-dir", type=Path, default=Path("reports"), metavar="DIR", help=reports_help)
    merge = command("merge-results", help="combine the results of --shard K/N runs into one")
    merge.add_argument("results", nargs="+", type=Path, help="each shard's alignment_results.json")
    merge.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="where to write them")
    schema = command("schema", help="print the JSON Schema of alignment.yaml or of the input file")
    schema.add_argument(
        "file", choices=sorted(SCHEMAS), help="config: alignment.yaml; input: categorized_branches.json"
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "schema":
        print(schema_text(arguments.file), end="")
        return 0
    try:
        if arguments.command == "merge-results":
            return _merge(arguments.results, arguments.output)
        if arguments.command == "undo":
            return _undo(arguments.reports_dir, arguments.run_id, arguments.repo, arguments.dry_run)
        return _runs(arguments.reports_dir)
    except AlignmentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _undo(reports_dir: Path, run_id: str, repo: str | None, dry_run: bool) -> int:
    report = undo_run(reports_dir, run_id, repo_path=repo, dry_run=dry_run)
    if report.note is not None:
        print(f"note: {report.note}", file=sys.stderr)
    marks = {**_MARKS, **_DRY_RUN_MARKS} if dry_run else _MARKS
    for item in report.restorations:
        print(f"{marks[item.outcome]:>9}  {item.message}")
    counts = Counter(_MARKS[item.outcome] for item in report.restorations)  # as the rows say, dry run or not
    verb = "would restore" if dry_run else "restored"
    failed = f", failed {counts['FAILED']}" if counts["FAILED"] else ""
    print(
        f"run {run_id}: {verb} {counts['ok']}, unchanged {counts['unchanged']}, refused {counts['REFUSED']}{failed} "
        f"of {counted(len(report.restorations), 'moved branch', 'moved branches')} in {report.repository}"
    )
    return 1 if report.refused else 0


def _merge(paths: Sequence[Path], output: Path) -> int:
    """Merge; a refusal is one line and exit code 4, pytest's code for a usage error."""
    try:
        merged = merge_results(paths)
    except UsageProblem as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    target = output / RESULTS_FILE
    written = (target, target.with_name(html_name(target.name)))
    replaced = next((path for path in paths for file in written if _same_file(file, path)), None)
    if replaced is not None:  # -o a shard's own run folder: its results would be gone, its run misreported
        print(
            f"error: {output}: -o: writing there would replace {replaced}, one of the results being merged; "
            "give another directory",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        write_results(target, merged)
    except OSError as error:  # -o names a file, or a folder under one, or one we may not write
        where = (
            f"{output}: -o: expected a directory to write the merged results in ({error.strerror}: {error.filename})"
        )
        print(f"error: {where}", file=sys.stderr)
        return EXIT_USAGE
    shards, summary = merged["shards"], merged["overall_summary"]
    for index in shards["missing"]:
        print(f"warning: no results of shard {index}/{shards['count']}: its branches are not in the merged results")
    breaker = "tripped in " + ", ".join(
        f"{run['index']}/{shards['count']}" for run in shards["runs"] if run["circuit_breaker_triggered"]
    )
    print(
        f"merged {len(shards['runs'])} of {shards['count']} shards: {summary['total_successful']} aligned, "
        f"{summary['total_failed']} failed, {summary['total_not_run']} not run; circuit breaker "
        f"{breaker if summary['circuit_breaker_triggered'] else 'closed'}"
    )
    print(f"results: {target}")
    print(f"report: {written[1]}")
    return 0


def _same_file(one: Path, other: Path) -> bool:
    """Whether the two paths name one file (through symbolic links, hard links, ``..``); False when either
    is not there."""
    try:
        return one.samefile(other)
    except OSError:
        return False


def _runs(reports_dir: Path) -> int:
    runs = list_runs(reports_dir)
    if not runs:
        raise UsageProblem(
            f"no runs in {reports_dir.resolve()}: pass --reports-dir DIR, the directory your pytest runs wrote to "
            "(their --reports-dir, default reports/ where pytest was started)"
        )
    for run in runs:
        try:
            print(_run_line(run))
        except FileProblem as error:  # one unreadable run (a power cut) hides no other
            print(f"warning: run {run.run_id} skipped: {error}", file=sys.stderr)
    return 0


def _run_line(run: RunEntry) -> str:
    """``<run id>  <how it ended>; <n> branches moved[, <m> undone]  <repository>``: the branches the run has
    moved now; those ``alignment undo`` put back are said apart, those the run put back itself not at all."""
    summary, record = run.summary(), run.folder.record()
    if run.state is RunState.FINISHED:
        ok, failed, skipped = (summary[key] for key in ("total_successful", "total_failed", "total_not_run"))
        state = f"{ok} ok, {failed} failed, {skipped} not run"
    elif run.state is RunState.PLANNED:
        state = f"plan: {summary['total_successful']} would align, {summary['total_failed']} would fail"
    else:  # the record says whether it was a plan (``--plan``) that died
        state = "plan: did not finish" if record.get("predict") is True else "did not finish"
    moves = moves_by_put_back(run.folder)
    moved = f"{counted(moves[None], 'branch', 'branches')} moved"
    if moves[PutBack.UNDO]:
        moved += f", {moves[PutBack.UNDO]} undone"
    return f"{run.run_id}  {state}; {moved}  {record['repository']}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
