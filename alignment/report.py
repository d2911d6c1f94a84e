"""The report builder: per-branch results to the spec's output dict, and the run folders it is written to.

``build_results`` is the one place the spec's output is shaped; the orchestrator and the pytest plugin both
call it. Beyond the spec's keys it adds documented extras (``schema_version``, ``run_id``, per group
``not_run``, per branch the keys of ``BranchResult.to_dict``); ``schema/alignment_results.schema.json``
describes all of them for Task 080.

Runs never overwrite each other: each writes ``<reports>/runs/<run id>/``, then ``<reports>/latest`` is
pointed at it and ``<reports>/alignment_results.json`` is replaced by a copy, both atomically.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignment.breaker import BreakerState
from alignment.inputs import BranchInput
from alignment.model import SCHEMA_VERSION, BranchResult, iso_utc

RESULTS_FILE = "alignment_results.json"
SCHEMA_PATH = Path(__file__).with_name("schema") / "alignment_results.schema.json"


def new_run_id(now: float) -> str:
    """Sortable and unique: UTC time plus random hex, e.g. ``20261125T101500Z-3fa9c1``."""
    stamp = datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def build_results(
    branches: BranchInput,
    results: Mapping[str, BranchResult],
    *,
    run_id: str,
    started: float,
    finished: float,
    breaker: BreakerState,
    selected: Collection[str] | None = None,
) -> dict[str, Any]:
    """The spec's output for the branches of ``branches`` that were ``selected`` (default: all).

    Groups follow the targets' first appearance in the input, branches the input order. A selected branch
    without a result was never started (the circuit breaker stopped the run) and is listed in ``not_run``.
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
    processed = sum(group["processed_branches"] for group in groups.values())
    successful = sum(group["successful"] for group in groups.values())
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "orchestration_results": groups,
        "overall_summary": {
            "total_branches_processed": processed,
            "total_successful": successful,
            "total_failed": processed - successful,
            "total_not_run": sum(len(group["not_run"]) for group in groups.values()),
            "total_time_seconds": round(finished - started, 3),
            "circuit_breaker_triggered": breaker.tripped,
            "circuit_breaker_reason": breaker.reason,
            "execution_timestamp": iso_utc(started, "seconds"),
        },
    }


@dataclass(frozen=True)
class RunFolder:
    """Where one run writes: ``<reports>/runs/<run id>/`` and the shared pointers above it."""

    reports_dir: Path
    run_id: str

    @property
    def path(self) -> Path:
        return self.reports_dir / "runs" / self.run_id

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def changes_dir(self) -> Path:
        return self.path / "changes"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def moves_dir(self) -> Path:
        return self.path / "moves"

    @property
    def audit_path(self) -> Path:
        return self.path / "audit.jsonl"

    def publish(self, results: Mapping[str, Any]) -> Path:
        """Write the results into the run folder, then point ``latest`` and the top-level copy at them."""
        text = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
        _write_atomically(self.results_path, text)
        _write_atomically(self.reports_dir / RESULTS_FILE, text)
        link = self.reports_dir / "latest"
        temporary = self.reports_dir / f".latest-{secrets.token_hex(4)}"
        os.symlink(Path("runs") / self.run_id, temporary)
        os.replace(temporary, link)
        return self.results_path


def load_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
