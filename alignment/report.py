"""The report builder: per-branch results to the spec's output dict, published into the run's folder.

``build_results`` is the one place the spec's output is shaped; the orchestrator and the pytest plugin both
call it. Beyond the spec's keys it adds documented extras (``schema_version``, ``run_id``, ``planned``,
``shard`` in one shard's results of a ``--shard K/N`` run, per group ``not_run`` and, in a plan,
``conflict_matrix``, per branch the keys of ``BranchResult.to_dict``);
``schema/alignment_results.schema.json`` describes all of them for programs that read them.

``publish`` writes into the run's own folder (``runs.RunFolder``), then ``<reports>/latest`` is pointed at
it and ``<reports>/alignment_results.json`` is replaced by a copy, both atomically. Each JSON file gets its
HTML report beside it. A plan writes ``alignment_plan.json`` instead and leaves ``latest`` and
``alignment_results.json`` alone: they describe the last real run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from alignment.breaker import BreakerState
from alignment.explain import ConflictMatrix
from alignment.html_report import render_report
from alignment.inputs import BranchInput
from alignment.model import SCHEMA_VERSION, BranchResult, iso_utc
from alignment.names import as_utf8, json_text
from alignment.runs import PLAN_FILE, RESULTS_FILE, RunFolder, write_atomically


def build_results(
    branches: BranchInput,
    results: Mapping[str, BranchResult],
    *,
    run_id: str,
    started: float,
    finished: float,
    breaker: BreakerState,
    selected: Collection[str] | None = None,
    matrices: Mapping[str, ConflictMatrix] | None = None,
) -> dict[str, Any]:
    """The spec's output for the branches of ``branches`` that were ``selected`` (default: all).

    Groups follow the targets' first appearance in the input, branches the input order. A selected branch
    without a result was never started (the circuit breaker stopped the run) and is listed in ``not_run``.
    ``matrices`` (a plan's pairwise conflicts per target) makes the output a plan: ``"planned": true``.
    """
    chosen = set(selected) if selected is not None else None
    groups: dict[str, Any] = {}
    for group in branches.groups:
        specs = [spec for spec in group.branches if chosen is None or spec.name in chosen]
        if not specs:
            continue
        done = [results[spec.name] for spec in specs if spec.name in results]
        successful = sum(result.succeeded for result in done)
        groups[group.target] = {
            "target_branch": group.target,
            "processed_branches": len(done),
            "successful": successful,
            "failed": len(done) - successful,
            "branches": [result.to_dict() for result in done],
            "not_run": [spec.name for spec in specs if spec.name not in results],
        }
        if matrices is not None and group.target in matrices:
            groups[group.target]["conflict_matrix"] = matrices[group.target].to_dict()
    shard = {"shard": branches.shard.to_dict()} if branches.shard is not None else {}
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "planned": matrices is not None,
        **shard,
        "orchestration_results": groups,
        "overall_summary": overall_summary(
            groups,
            started=started,
            finished=finished,
            tripped=breaker.tripped,
            reason=breaker.reason,
            tripped_at=breaker.tripped_at,
        ),
    }


def overall_summary(
    groups: Mapping[str, Mapping[str, Any]],
    *,
    started: float,
    finished: float,
    tripped: bool,
    reason: str | None,
    tripped_at: float | None,
) -> dict[str, Any]:
    """The spec's ``overall_summary``: the groups' counts summed, the run's time span and breaker state."""
    processed = sum(group["processed_branches"] for group in groups.values())
    successful = sum(group["successful"] for group in groups.values())
    return {
        "total_branches_processed": processed,
        "total_successful": successful,
        "total_failed": processed - successful,
        "total_not_run": sum(len(group["not_run"]) for group in groups.values()),
        "total_time_seconds": round(finished - started, 3),
        "circuit_breaker_triggered": tripped,
        "circuit_breaker_reason": reason,
        "circuit_breaker_tripped_at": iso_utc(tripped_at) if tripped_at else None,
        "execution_timestamp": iso_utc(started, "seconds"),
        "started_at": iso_utc(started),
    }


def publish(folder: RunFolder, results: Mapping[str, Any]) -> Path:
    """Write the results and their HTML report into the run folder, then the top-level copies; a real run
    also points ``latest`` at its folder. Returns the JSON file in the run folder."""
    planned = bool(results.get("planned"))
    name = PLAN_FILE if planned else RESULTS_FILE
    for directory in (folder.path, folder.reports_dir):
        write_results(directory / name, results)
    if not planned:
        folder.point_latest()
    return folder.path / name


def write_results(path: Path, results: Mapping[str, Any]) -> None:
    """Write ``results`` to ``path`` and its HTML report beside it, each atomically.

    A path that was not UTF-8 (a byte git gave, decoded with ``surrogateescape``) is a lone surrogate, which
    no UTF-8 file can hold: the JSON writes it as its ``\\u`` escape (read back, it is the same string),
    the HTML as ``\\xNN``, as the terminal shows it.
    """
    write_atomically(path, json_text(results, indent=2) + "\n")
    write_atomically(path.with_name(html_name(path.name)), as_utf8(render_report(results, path.parent)))


def html_name(json_name: str) -> str:
    """The HTML report's file name beside a JSON file: ``alignment_results.html``."""
    return json_name.removesuffix(".json") + ".html"
