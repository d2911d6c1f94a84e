"""The run ledger both front ends drive: audit records, the breaker's trip, amendments, the published output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alignment.inputs import load_branches
from alignment.ledger import AUDIT_MESSAGE_CHARS, RunLedger
from alignment.model import BranchResult, Status
from alignment.session import RunSetup, set_up_run
from alignment.spill import Spilled
from tests.conftest import Repo, entry, settings, write_input


@pytest.fixture
def run_setup(repo: Repo, tmp_path: Path) -> Iterator[RunSetup]:
    for name in ("a", "b", "c"):
        repo.branch(name, "main")
    input_path = write_input(tmp_path / "input.json", [entry("a"), entry("b"), entry("c")])
    made = set_up_run(
        settings(failure_threshold_count=2, failure_threshold_percent=50),
        load_branches(input_path),
        repo.path,
        reports_dir=tmp_path / "reports",
    )
    yield made
    made.discard_scratch()


def result(branch: str, status: Status = Status.COMPLETED) -> BranchResult:
    return BranchResult(branch, "main", status, 1.23456, old_tip="1" * 40, new_tip="2" * 40)


def audit(run_setup: RunSetup) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run_setup.folder.audit_path.read_text().splitlines()]


def test_an_interruption_is_recorded_once(run_setup: RunSetup) -> None:
    """Ctrl-C during the branches, then again during the push: one ``run_interrupted``, with the first reason."""
    ledger = RunLedger(run_setup)
    ledger.interrupted("Ctrl-C (KeyboardInterrupt)")
    ledger.interrupted("interrupted (Ctrl-C) while pushing")
    assert [(event["event"], event["reason"]) for event in audit(run_setup)] == [
        ("run_interrupted", "Ctrl-C (KeyboardInterrupt)")
    ]


def test_a_run_is_recorded_from_start_to_end(run_setup: RunSetup) -> None:
    ledger = RunLedger(run_setup)
    ledger.start()
    ledger.branch_started(run_setup.branches.branches[0])
    assert ledger.branch_finished(result("a")) == 1
    published = ledger.finish()
    assert published.path == run_setup.folder.path / "alignment_results.json"
    assert json.loads(published.path.read_text()) == published.results
    assert published.results["orchestration_results"]["main"]["not_run"] == ["b", "c"]
    events = audit(run_setup)
    assert [event["event"] for event in events] == ["run_start", "branch_start", "branch_end", "run_end"]
    assert events[2] | {"time": None} == {
        "time": None,
        "event": "branch_end",
        "branch": "a",
        "target": "main",
        "status": "completed",
        "old_tip": "1" * 40,
        "new_tip": "2" * 40,
        "seconds": 1.235,
        "backup_branch": None,
    }


def test_a_failed_branch_end_says_why_and_names_its_backup(run_setup: RunSetup) -> None:
    """An auditor reading the audit trail alone learns the outcome: the codes and the message (cut short; the
    results file has it whole), and the backup the branch can be put back from."""
    ledger = RunLedger(run_setup)
    long_message = "Merge conflict in " + ", ".join(f"file{index}.py" for index in range(100))
    failed = BranchResult(
        "a",
        "main",
        Status.FAILED_INTEGRATION,
        0.5,
        codes=("merge_conflict_unresolvable",),
        message=long_message,
        old_tip="1" * 40,
        backup_branch="backup-a-pre-align",
    )
    ledger.branch_finished(failed)
    (end,) = [event for event in audit(run_setup) if event["event"] == "branch_end"]
    assert end["backup_branch"] == "backup-a-pre-align"
    assert end["errors_detected"] == ["merge_conflict_unresolvable"]
    assert len(end["error_message"]) == AUDIT_MESSAGE_CHARS
    assert end["error_message"] == long_message[: AUDIT_MESSAGE_CHARS - 3] + "..."


def test_a_trip_is_handed_to_the_front_end_then_recorded(run_setup: RunSetup) -> None:
    """The front end stops new branches first, so the trip's recorded time is after every branch's start."""
    trips: list[str] = []

    def stop(reason: str) -> None:
        assert all(event["event"] != "circuit_breaker_tripped" for event in audit(run_setup))
        trips.append(reason)

    ledger = RunLedger(run_setup, on_trip=stop)
    ledger.branch_finished(result("a", Status.FAILED_INTEGRATION))
    assert not ledger.tripped
    assert not trips
    ledger.branch_finished(result("b"), failed=True)  # the front end's say: e.g. its teardown failed
    assert ledger.tripped
    assert trips == [ledger.breaker.state().reason]
    assert audit(run_setup)[-1] == {
        "time": audit(run_setup)[-1]["time"],
        "event": "circuit_breaker_tripped",
        "reason": trips[0],
    }


def test_a_finished_branch_can_be_amended_before_the_results_are_built(run_setup: RunSetup) -> None:
    ledger = RunLedger(run_setup)
    ledger.branch_finished(result("a"))
    with pytest.raises(KeyError, match="'b'"):
        ledger.amend(result("b"))
    ledger.amend(result("a", Status.EXCEPTION))
    (branch,) = ledger.finish().results["orchestration_results"]["main"]["branches"]
    assert branch["status"] == "exception"
    assert audit(run_setup)[-2]["event"] == "branch_amended"


def test_results_wait_for_the_end_on_disk_and_come_back_as_recorded(run_setup: RunSetup) -> None:
    """The ledger keeps no result in memory while the run goes on: only where each was written."""
    ledger = RunLedger(run_setup)
    recorded = [result("a"), result("b", Status.FAILED_INTEGRATION), result("c")]
    for each in recorded:
        ledger.branch_finished(each)
    assert all(isinstance(kept, Spilled) for kept in ledger._results.values())
    assert ledger.results == {each.branch: each for each in recorded}
    ledger.amend(result("b"))
    assert ledger.results["b"] == result("b")
    assert [branch["status"] for branch in ledger.finish().results["orchestration_results"]["main"]["branches"]] == [
        "completed"
    ] * 3
