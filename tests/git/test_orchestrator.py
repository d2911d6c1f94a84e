"""BranchAlignmentOrchestrator: the spec's eight named tests, its integration tests, and the config keys."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from alignment.components import BranchContext, Integration
from alignment.config import Settings
from alignment.demo import EXPECTED_FILE, build_demo
from alignment.detect import ChangeErrorDetector
from alignment.document import MarkdownDocGenerator
from alignment.errors import ConfigError, InputError, RepositoryError, UsageProblem
from alignment.git import Git, RefUpdate
from alignment.inputs import load_branches
from alignment.integrate import MergeOrRebaseIntegrator
from alignment.journal import MoveJournal
from alignment.ledger import RunLedger
from alignment.model import BranchResult, Status
from alignment.orchestrator import BranchAlignmentOrchestrator, ProgressCallbackError
from alignment.pipeline import Runtime
from alignment.registry import Components
from alignment.runs import RunFolder
from alignment.session import moves_made, set_up_run
from alignment.shard import ShardSpec
from tests.conftest import Repo, entry, load_schema, settings, with_merge_of_its_own, write_input
from tests.fakes import (
    OLD_WARNING,
    SYNTAX,
    FakeDetector,
    FakeDocGenerator,
    FakeIntegrator,
    Recorder,
    fake_components,
    max_overlap,
)

SPEC_INPUT = {
    "branches": [
        {
            "branch_name": "feature/auth",
            "assigned_target": "main",
            "confidence": 0.87,
            "tags": ["tag:main_branch", "tag:parallel_safe"],
            "cluster_id": 0,
        },
        {
            "branch_name": "feature/research",
            "assigned_target": "scientific",
            "confidence": 0.72,
            "tags": ["tag:scientific_branch"],
            "cluster_id": 1,
        },
    ]
}
SPEC_GROUP_KEYS = {"target_branch", "processed_branches", "successful", "failed", "branches"}
SPEC_SUMMARY_KEYS = {
    "total_branches_processed",
    "total_successful",
    "total_failed",
    "total_time_seconds",
    "circuit_breaker_triggered",
    "execution_timestamp",
}


@pytest.fixture
def many(repo: Repo) -> list[str]:
    """Twelve real branches: six for main, six for a 'scientific' target forked from main."""
    repo.branch("scientific", "main")
    repo.commit("scientific", {"science.txt": "s\n"})
    names = []
    for index in range(6):
        for target in ("main", "scientific"):
            name = f"{target}-topic-{index}"
            repo.commit(name, {f"{name}.txt": "x\n"}, parent=repo.tip("main"))
            names.append(name)
    repo.commit("main", {"main.txt": "m\n"})
    return names


def orchestrate(
    repo: Repo, tmp_path: Path, names: list[str], config: Settings | None = None, components: Components | None = None
) -> dict[str, Any]:
    entries = [entry(name, "scientific" if name.startswith("scientific") else "main") for name in names]
    path = write_input(tmp_path / "in.json", entries)
    orchestrator = BranchAlignmentOrchestrator(config, components=components, reports_dir=tmp_path / "reports")
    return orchestrator.run(path, repo.path)


# -- the spec's eight named tests ----------------------------------------------------------------------


def test_load_categorized_branches(tmp_path: Path) -> None:
    """Load and parse categorized_branches.json"""
    path = tmp_path / "categorized_branches.json"
    path.write_text(json.dumps(SPEC_INPUT), encoding="utf-8")
    loaded = load_branches(path)
    assert [(spec.name, spec.target, spec.confidence, spec.tags, spec.cluster_id) for spec in loaded.branches] == [
        ("feature/auth", "main", 0.87, ("tag:main_branch", "tag:parallel_safe"), 0),
        ("feature/research", "scientific", 0.72, ("tag:scientific_branch",), 1),
    ]


def test_group_branches_by_target(repo: Repo, many: list[str], tmp_path: Path) -> None:
    """Branches grouped correctly by target"""
    result = orchestrate(repo, tmp_path, many, components=fake_components(Recorder()))
    groups = result["orchestration_results"]
    assert list(groups) == ["main", "scientific"]
    for target, group in groups.items():
        assert [branch["branch_name"] for branch in group["branches"]] == [n for n in many if n.startswith(target)]
        assert group["target_branch"] == target


def test_parallel_execution_within_group(repo: Repo, many: list[str], tmp_path: Path) -> None:
    """All branches in target group execute in parallel"""
    recorder = Recorder()
    components = fake_components(recorder, seconds=0.3, together=threading.Barrier(3))
    orchestrate(repo, tmp_path, many, settings(max_workers_per_target=3), components)
    for target in ("main", "scientific"):
        intervals = [span for name, span in recorder.intervals.items() if name.startswith(target)]
        assert max_overlap(intervals) == 3


def test_sequential_execution_between_groups(repo: Repo, many: list[str], tmp_path: Path) -> None:
    """Target groups process sequentially or isolated"""
    recorder = Recorder()
    orchestrate(repo, tmp_path, many, settings(max_workers_per_target=6), fake_components(recorder, seconds=0.1))
    main = [span for name, span in recorder.intervals.items() if name.startswith("main")]
    scientific = [span for name, span in recorder.intervals.items() if name.startswith("scientific")]
    assert max(end for _, end in main) <= min(start for start, _ in scientific)


def test_rollback_on_integration_failure(repo: Repo, tmp_path: Path) -> None:
    """Rollback succeeds when integration fails"""
    base = repo.tip("main")
    conflicting = repo.commit("conflicting", {"app.py": "mine\n"}, parent=base)
    repo.commit("main", {"app.py": "theirs\n"})
    result = orchestrate(repo, tmp_path, ["conflicting"])
    (branch,) = result["orchestration_results"]["main"]["branches"]
    assert branch["status"] == "failed_integration"
    assert branch["error_message"] == "Merge conflict in app.py (unresolvable)"
    assert repo.tip("conflicting") == conflicting == branch["old_tip"]
    assert repo.tip("backup-conflicting-pre-align") == conflicting


class SignalAfterTheMove(logging.Handler):
    """Raises a BaseException (like pytest-timeout's signal) right after the branch ref moved."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("moved "):
            raise KeyboardInterrupt


def align_interrupted(repo: Repo, tmp_path: Path) -> tuple[BranchResult, RunFolder]:
    """Align 'late' (behind main, with a commit of its own) in a run that a KeyboardInterrupt stops: it ends
    at its old tip; its result and the run's folder."""
    old = repo.commit("late", {"late.txt": "x\n"}, parent=repo.tip("main"))
    repo.commit("main", {"main.txt": "m\n"})
    setup = set_up_run(
        Settings(),
        load_branches(write_input(tmp_path / "in.json", [entry("late")])),
        repo.path,
        reports_dir=tmp_path / "reports",
    )
    try:
        with Runtime(setup) as runtime:
            alignment = runtime.alignment(setup.branches.branches[0])
            with pytest.raises(KeyboardInterrupt):
                alignment.run()
            result = alignment.finish()
    finally:
        setup.discard_scratch()
    assert (result.status, result.codes) == (Status.EXCEPTION, ("interrupted",))
    assert repo.tip("late") == old
    return result, setup.folder


def test_rollback_when_interrupted_after_the_ref_moved(repo: Repo, tmp_path: Path) -> None:
    logger = logging.getLogger("alignment.pipeline")
    handler, level = SignalAfterTheMove(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        result, folder = align_interrupted(repo, tmp_path)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert any("restored 'late' to its old tip" in note for note in result.notes)
    assert moves_made(folder) == 0  # `alignment runs` counts no move: the run put it back


def test_a_move_interrupted_before_the_compare_and_swap_is_no_move(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move is journaled, then the signal arrives before git ran it: `alignment runs` counts no move."""
    update_refs = Git.update_refs

    def interrupt_the_move(self: Git, updates: list[RefUpdate]) -> None:
        if updates[0].ref == "refs/heads/late":
            raise KeyboardInterrupt
        update_refs(self, updates)

    monkeypatch.setattr(Git, "update_refs", interrupt_the_move)
    result, folder = align_interrupted(repo, tmp_path)
    assert not any("restored" in note for note in result.notes)
    assert MoveJournal(folder.moves_dir).get("late") is not None  # journaled before the compare-and-swap
    assert moves_made(folder) == 0


class CtrlCWhileAnotherRuns(MergeOrRebaseIntegrator):
    """Merges like the default, except: 'a' raises KeyboardInterrupt (a Ctrl-C, on its thread) once 'b' has
    started integrating, and 'b' finishes integrating only after 'a' has its result (``released``)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.b_started, self.released = threading.Event(), threading.Event()

    def integrate(self, context: BranchContext) -> Integration:
        if context.branch == "a":
            assert self.b_started.wait(60)
            raise KeyboardInterrupt
        if context.branch == "b":
            self.b_started.set()
            assert self.released.wait(60)
        return super().integrate(context)


def test_ctrl_c_starts_no_branch_and_stops_the_running_ones_with_results_written(repo: Repo, tmp_path: Path) -> None:
    """After Ctrl-C no queued branch starts, a running one stops before its next step (nothing moves), the
    results are written (interrupted / not_run) and the KeyboardInterrupt reaches the caller."""
    names = ["a", "b", "c", "d"]
    tips = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=repo.tip("main")) for name in names}
    repo.commit("main", {"main.txt": "m\n"})
    config = settings(max_workers_per_target=2)
    integrator = CtrlCWhileAnotherRuns(config)
    components = Components(integrator, ChangeErrorDetector(config), MarkdownDocGenerator(config))

    def progress(done: int, total: int, result: dict[str, Any]) -> None:
        if result["branch_name"] == "a":
            integrator.released.set()

    orchestrator = BranchAlignmentOrchestrator(
        config, components=components, reports_dir=tmp_path / "r", progress=progress
    )
    with pytest.raises(KeyboardInterrupt):
        orchestrator.run(write_input(tmp_path / "in.json", [entry(name) for name in names]), repo.path)
    assert {name: repo.tip(name) for name in names} == tips
    results = json.loads((tmp_path / "r" / "alignment_results.json").read_text(encoding="utf-8"))
    group = results["orchestration_results"]["main"]
    statuses = {branch["branch_name"]: (branch["status"], branch["errors_detected"]) for branch in group["branches"]}
    assert statuses == {"a": ("exception", ["interrupted"]), "b": ("exception", ["interrupted"])}
    assert group["not_run"] == ["c", "d"]
    assert orchestrator.last_setup is not None
    audit = orchestrator.last_setup.folder.audit_path.read_text(encoding="utf-8")
    events = [(record["event"], record.get("branch")) for record in map(json.loads, audit.splitlines())]
    assert sorted(branch for event, branch in events if event == "branch_start") == ["a", "b"]  # two threads
    assert ("run_interrupted", None) in events
    assert events[-1][0] == "run_end"


class CtrlCTwice(MergeOrRebaseIntegrator):
    """Merges like the default, except that while integrating it sends this process Ctrl-C (SIGINT) twice, the
    second once the run waits for it to stop, and then takes a while to end its step."""

    PAUSE_SECONDS = 0.5

    def integrate(self, context: BranchContext) -> Integration:
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(self.PAUSE_SECONDS)
        return super().integrate(context)


def test_a_second_ctrl_c_waits_for_the_running_branches_to_stop(
    repo: Repo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """README: a further Ctrl-C while the running branches stop does not cut the wait short: ``run`` raises only
    once no branch thread runs (none is left to find its scratch directory gone), with the results written."""
    tips = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=repo.tip("main")) for name in ("a", "b")}
    repo.commit("main", {"main.txt": "m\n"})
    config = settings(max_workers_per_target=1)
    components = Components(CtrlCTwice(config), ChangeErrorDetector(config), MarkdownDocGenerator(config))
    orchestrator = BranchAlignmentOrchestrator(config, components=components, reports_dir=tmp_path / "r")
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            orchestrator.run(write_input(tmp_path / "in.json", [entry("a"), entry("b")]), repo.path)
        running = [thread for thread in threading.enumerate() if thread.name.startswith("align-")]
    finally:
        for thread in threading.enumerate():
            if thread.name.startswith("align-"):
                thread.join(10)
    assert running == []
    assert signal.getsignal(signal.SIGINT) is handler
    assert "Ctrl-C again: waiting for the running branches to stop before their next step" in caplog.messages
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
    assert {name: repo.tip(name) for name in tips} == tips
    results = json.loads((tmp_path / "r" / "alignment_results.json").read_text(encoding="utf-8"))
    group = results["orchestration_results"]["main"]
    assert [(branch["branch_name"], branch["errors_detected"]) for branch in group["branches"]] == [
        ("a", ["interrupted"])
    ]
    assert group["not_run"] == ["b"]


def test_error_detection_integration(repo: Repo, many: list[str], tmp_path: Path) -> None:
    """Error detection runs and results captured"""
    detector = FakeDetector({"main-topic-0": (SYNTAX, OLD_WARNING), "main-topic-1": (OLD_WARNING,)})
    components = Components(FakeIntegrator(Recorder(), seconds=0), detector, FakeDocGenerator())
    result = orchestrate(repo, tmp_path, many[:4], components=components)
    branches = {branch["branch_name"]: branch for branch in result["orchestration_results"]["main"]["branches"]}
    broken, warned = branches["main-topic-0"], branches["main-topic-1"]
    assert broken["status"] == "failed_error_detection"
    assert broken["errors_detected"] == ["python_syntax_error"]
    assert broken["error_message"].endswith("python_syntax_error in src/app.py:3 (invalid Python: invalid syntax)")
    assert [finding["code"] for finding in broken["findings"]] == ["python_syntax_error", "trailing_whitespace"]
    assert warned["status"] == "completed"
    assert warned["errors_detected"] == []
    assert warned["findings"][0]["severity"] == "warning"
    assert {branch for branch, _ in detector.seen} == set(many[:4])


def test_circuit_breaker_stops_cascade(repo: Repo, many: list[str], tmp_path: Path) -> None:
    """Circuit breaker stops on failure threshold"""
    recorder = Recorder()
    config = settings(enable_parallelization=False, failure_threshold_count=3, failure_threshold_percent=50)
    result = orchestrate(repo, tmp_path, many, config, fake_components(recorder, seconds=0, conflicts=["*"]))
    summary = result["overall_summary"]
    assert summary["circuit_breaker_triggered"] is True
    assert "3 of 3 finished branches failed" in summary["circuit_breaker_reason"]
    assert recorder.order == ["main-topic-0", "main-topic-1", "main-topic-2"]
    assert summary["total_branches_processed"] == 3
    assert summary["total_not_run"] == 9
    assert result["orchestration_results"]["main"]["not_run"] == ["main-topic-3", "main-topic-4", "main-topic-5"]
    assert result["orchestration_results"]["scientific"]["processed_branches"] == 0
    for name in set(many) - set(recorder.order):
        assert not repo.exists(f"backup-{name}-pre-align")


def test_output_schema_validation(tmp_path: Path) -> None:
    """Output matches specification exactly"""
    repo_path, input_path = build_demo(tmp_path / "demo")
    result = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(input_path, repo_path)
    jsonschema.validate(result, load_schema())
    assert set(result) == {"schema_version", "run_id", "planned", "orchestration_results", "overall_summary"}
    assert result["planned"] is False
    assert set(result["overall_summary"]) >= SPEC_SUMMARY_KEYS
    assert result["overall_summary"]["execution_timestamp"].endswith("Z")
    for group in result["orchestration_results"].values():
        assert set(group) >= SPEC_GROUP_KEYS
        assert group["processed_branches"] == group["successful"] + group["failed"] == len(group["branches"])
        for branch in group["branches"]:
            assert list(branch)[:4] == ["branch_name", "status", "integration_time_seconds", "errors_detected"]
            assert ("changes_summary" in branch) == (branch["status"] == "completed")
            assert ("error_message" in branch) == (branch["status"] != "completed")


# -- the spec's integration tests ----------------------------------------------------------------------


def test_full_orchestration_mixed_targets(tmp_path: Path) -> None:
    """Full workflow with branches for all three targets"""
    repo_path, input_path = build_demo(tmp_path / "demo")
    expected = json.loads(input_path.with_name(EXPECTED_FILE).read_text())
    reports = tmp_path / "reports"
    result = BranchAlignmentOrchestrator(reports_dir=reports).run(input_path, repo_path)
    groups = result["orchestration_results"]
    assert list(groups) == ["main", "scientific", "orchestration-tools"]
    statuses = {branch["branch_name"]: branch["status"] for group in groups.values() for branch in group["branches"]}
    assert statuses == expected
    summary = result["overall_summary"]
    assert (summary["total_branches_processed"], summary["total_successful"], summary["total_failed"]) == (20, 16, 4)
    run_dir = reports / "runs" / result["run_id"]
    assert json.loads((run_dir / "alignment_results.json").read_text()) == result
    assert json.loads((reports / "alignment_results.json").read_text()) == result
    assert (reports / "latest").resolve() == run_dir.resolve()
    audit = [json.loads(line) for line in (run_dir / "audit.jsonl").read_text().splitlines()]
    assert [event["event"] for event in audit].count("branch_end") == 20
    assert audit[0]["event"] == "run_start"
    assert audit[-1]["event"] == "run_end"
    assert len(list((run_dir / "logs").glob("*.log"))) == 20
    assert len(list((run_dir / "changes").rglob("*.md"))) == 20


def test_error_handling_and_recovery(repo: Repo, tmp_path: Path) -> None:
    """Error conditions handled gracefully"""
    repo.commit("ok", {"ok.txt": "x\n"}, parent=repo.tip("main"))
    repo.commit("busy", {"busy.txt": "x\n"}, parent=repo.tip("main"))
    repo.git("worktree", "add", "-q", str(tmp_path / "busy-wt"), "busy")
    repo.commit("main", {"m.txt": "m\n"})
    path = write_input(tmp_path / "in.json", [entry("ok"), entry("busy"), entry("gone")])
    result = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(path, repo.path)
    statuses = {
        b["branch_name"]: (b["status"], b["errors_detected"])
        for group in result["orchestration_results"].values()
        for b in group["branches"]
    }
    assert statuses == {
        "ok": ("completed", []),
        "busy": ("failed_integration", ["branch_checked_out"]),
        "gone": ("failed_integration", ["branch_not_found"]),
    }


def test_the_action_of_a_rebase_target_is_rebase_in_its_plan_and_its_run(repo: Repo, tmp_path: Path) -> None:
    """A plan predicts a rebase with the in-memory merge, but a rebase is what it predicts; and a branch
    refused before its rebase (merge commits of its own) or stopped by a conflict was to be rebased too."""
    base = repo.tip("main")
    repo.commit("simple", {"x.txt": "x\n"}, parent=base)
    with_merge_of_its_own(repo, "merged", base)
    repo.commit("clash", {"app.py": "mine\n"}, parent=base)
    repo.commit("main", {"app.py": "theirs\n"})
    path = write_input(tmp_path / "in.json", [entry(name) for name in ("simple", "merged", "clash")])
    config = settings(integration_strategy="rebase")
    orchestrator = BranchAlignmentOrchestrator(config, reports_dir=tmp_path / "reports")
    clash = (
        "Conflict in app.py (predicted by a merge; the rebase replays commits one by one and may differ)",
        "Rebase conflict in app.py (unresolvable)",
    )
    outputs = (orchestrator.plan(path, repo.path), orchestrator.run(path, repo.path))
    for data, message in zip(outputs, clash, strict=True):
        branches = {branch["branch_name"]: branch for branch in data["orchestration_results"]["main"]["branches"]}
        assert {name: (branch["status"], branch["action"]) for name, branch in branches.items()} == {
            "simple": ("completed", "rebase"),
            "merged": ("failed_integration", "rebase"),
            "clash": ("failed_integration", "rebase"),
        }
        assert branches["clash"]["error_message"] == message
        for name, status in (("simple", "completed"), ("merged", "failed_integration")):
            assert f"**Status:** {status} (rebase)" in Path(branches[name]["document"]).read_text()


def test_a_plan_says_its_rebase_was_predicted_by_a_merge_which_a_commit_reverted_later_can_fool(
    repo: Repo, tmp_path: Path
) -> None:
    """The merge sees only the branch's tip: a commit that edits the target's line and a later one reverting it
    merge cleanly, but the rebase replays the first against the target and conflicts. The plan cannot replay
    commits in memory (git 2.39), so its prediction says it came from a merge."""
    base = repo.tip("main")
    repo.commit("reverted", {"app.py": "mine\n"}, parent=base)
    repo.commit("reverted", {"app.py": repo.read(base, "app.py") + "\n"})
    repo.commit("main", {"app.py": "theirs\n"})
    path = write_input(tmp_path / "in.json", [entry("reverted")])
    orchestrator = BranchAlignmentOrchestrator(settings(integration_strategy="rebase"), reports_dir=tmp_path / "r")
    planned, ran = (
        data["orchestration_results"]["main"]["branches"][0]
        for data in (orchestrator.plan(path, repo.path), orchestrator.run(path, repo.path))
    )
    assert (planned["status"], ran["status"]) == ("completed", "failed_integration")
    note = "rebase predicted by a merge; the rebase replays commits one by one and may differ"
    assert note in planned["notes"]


def test_a_plan_names_the_backup_the_run_makes_or_reuses_and_says_so_as_the_run_does(
    repo: Repo, tmp_path: Path
) -> None:
    """``taken``'s backup name holds another commit: the run uses ``-2``; ``kept``'s backup is at its tip: the run
    reuses it. The plan names the same backups, with the same notes, and makes none."""
    base = repo.tip("main")
    repo.branch("backup-taken-pre-align", base)
    tips = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=base) for name in ("taken", "kept")}
    repo.branch("backup-kept-pre-align", tips["kept"])
    repo.commit("main", {"m.txt": "m\n"})
    path = write_input(tmp_path / "in.json", [entry("taken"), entry("kept")])
    orchestrator = BranchAlignmentOrchestrator(settings(), reports_dir=tmp_path / "reports")
    refs = repo.git("for-each-ref")
    planned = orchestrator.plan(path, repo.path)["orchestration_results"]["main"]["branches"]
    assert repo.git("for-each-ref") == refs
    ran = orchestrator.run(path, repo.path)["orchestration_results"]["main"]["branches"]
    said = [[(branch["backup_branch"], branch["notes"]) for branch in branches] for branches in (planned, ran)]
    assert said[0] == said[1]
    assert dict(said[0]) == {
        "backup-taken-pre-align-2": [
            "'backup-taken-pre-align' exists at another commit and was kept; backup is 'backup-taken-pre-align-2'"
        ],
        "backup-kept-pre-align": ["reused existing backup 'backup-kept-pre-align' (already at the old tip)"],
    }


def test_a_target_that_does_not_exist_refuses_the_run_before_anything_runs(repo: Repo, tmp_path: Path) -> None:
    repo.commit("ok", {"ok.txt": "x\n"}, parent=repo.tip("main"))
    repo.branch("next", "main")
    repo.git("update-ref", "refs/remotes/origin/nxt", repo.tip("main"))
    repo.git("update-ref", "refs/remotes/origin/HEAD", repo.tip("main"))
    path = write_input(tmp_path / "in.json", [entry("ok", "mian"), entry("x", "mian"), entry("y", "nxt")])
    before = repo.git("for-each-ref")
    with pytest.raises(InputError) as raised:
        BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(path, repo.path)
    git_dir = repo.path / ".git"
    assert str(raised.value) == (
        f"{path}: 2 problems: branches[0].assigned_target: target 'mian' is not a branch of {git_dir} "
        "(closest existing branch: 'main'); branches[2].assigned_target: target 'nxt' is not a branch of "
        f"{git_dir} (closest existing branch: 'next'); 'origin/nxt' exists: pass --remote origin to align onto "
        "the remote's branches"
    )
    assert repo.git("for-each-ref") == before
    assert not (tmp_path / "reports").exists()
    assert not (git_dir / "objects" / "info" / "commit-graph").exists()


def point_at_a_tag(repo: Repo, branch: str) -> None:
    """Write ``refs/heads/<branch>`` by hand to an annotated tag object (``git update-ref`` refuses to)."""
    repo.git("tag", "-a", "-m", "tag", f"tag-of-{branch}", repo.tip(branch))
    (repo.path / ".git" / "refs" / "heads" / branch).write_text(repo.git("rev-parse", f"tag-of-{branch}") + "\n")


def test_a_target_that_points_at_no_commit_refuses_the_run_before_anything_runs(repo: Repo, tmp_path: Path) -> None:
    repo.commit("ok", {"ok.txt": "x\n"}, parent=repo.tip("main"))
    repo.branch("next", "main")
    point_at_a_tag(repo, "next")
    path = write_input(tmp_path / "in.json", [entry("ok", "next")])
    before = repo.git("for-each-ref")
    with pytest.raises(InputError) as raised:
        BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(path, repo.path)
    assert str(raised.value) == (
        f"{path}: branches[0].assigned_target: 'next' of {repo.path / '.git'} points at a tag, no commit"
    )
    assert repo.git("for-each-ref") == before
    assert not (tmp_path / "reports").exists()


def test_a_branch_that_points_at_no_commit_fails_alone_without_a_backup(repo: Repo, tmp_path: Path) -> None:
    repo.commit("ok", {"ok.txt": "x\n"}, parent=repo.tip("main"))
    repo.commit("tagged", {"t.txt": "x\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    point_at_a_tag(repo, "tagged")
    pointed = (repo.path / ".git" / "refs" / "heads" / "tagged").read_text()
    path = write_input(tmp_path / "in.json", [entry("ok"), entry("tagged")])
    orchestrator = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports")
    result = orchestrator.run(path, repo.path)
    statuses = {
        b["branch_name"]: (b["status"], b["errors_detected"])
        for b in result["orchestration_results"]["main"]["branches"]
    }
    assert statuses == {"ok": ("completed", []), "tagged": ("failed_integration", ["branch_not_found"])}
    assert (repo.path / ".git" / "refs" / "heads" / "tagged").read_text() == pointed
    assert not repo.exists("backup-tagged-pre-align")
    assert orchestrator.last_setup is not None
    assert (
        "branch 'tagged' points at a tag, no commit: it is not aligned (branch_not_found)"
        in orchestrator.last_setup.housekeeping
    )


def test_parallel_safety_no_race_conditions(repo: Repo, tmp_path: Path) -> None:
    """No race conditions in concurrent execution"""
    base = repo.tip("main")
    names = [f"topic-{index}" for index in range(30)]
    olds = {name: repo.commit(name, {f"{name}.py": f"N = {index}\n"}, parent=base) for index, name in enumerate(names)}
    target = repo.commit("main", {"shared.py": "S = 1\n"})
    status_before = repo.status()
    config = settings(max_workers_per_target=8, max_concurrent_git_ops=3)
    result = orchestrate(repo, tmp_path, names, config)
    assert result["overall_summary"]["total_successful"] == 30
    for name in names:
        new = repo.tip(name)
        assert repo.git("rev-parse", f"{new}^1", f"{new}^2").split() == [olds[name], target]
        assert repo.git("rev-parse", f"{new}^{{tree}}") == repo.git("merge-tree", "--write-tree", olds[name], target)
        assert repo.tip(f"backup-{name}-pre-align") == olds[name]
    assert repo.status() == status_before
    audit = (tmp_path / "reports" / "latest" / "audit.jsonl").read_text().splitlines()
    assert len([json.loads(line) for line in audit]) == 62


# -- configuration keys and edge cases ------------------------------------------------------------------


def test_an_empty_input_is_an_input_error_that_writes_no_run(repo: Repo, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="branches: the list is empty"):
        orchestrate(repo, tmp_path, [])
    assert not (tmp_path / "reports").exists()


def test_single_branch(repo: Repo, tmp_path: Path) -> None:
    repo.commit("only", {"o.txt": "o\n"}, parent=repo.tip("main"))
    result = orchestrate(repo, tmp_path, ["only"])
    assert result["orchestration_results"]["main"]["successful"] == 1


def test_parallelization_disabled_runs_one_at_a_time(repo: Repo, many: list[str], tmp_path: Path) -> None:
    recorder = Recorder()
    config = settings(enable_parallelization=False, max_workers_per_target=4)
    orchestrate(repo, tmp_path, many, config, fake_components(recorder, seconds=0.05))
    assert max_overlap(recorder.intervals.values()) == 1
    assert recorder.order == many[0::2] + many[1::2]


def test_memory_bound_holds_new_branches_back(repo: Repo, many: list[str], tmp_path: Path) -> None:
    recorder = Recorder()
    config = settings(max_workers_per_target=4, max_memory_mb=1)
    result = orchestrate(repo, tmp_path, many, config, fake_components(recorder, seconds=0.1))
    assert max_overlap(recorder.intervals.values()) == 1
    assert result["overall_summary"]["total_successful"] == 12


def test_progress_reports_x_of_y(repo: Repo, many: list[str], tmp_path: Path) -> None:
    seen: list[tuple[int, int, str]] = []
    path = write_input(tmp_path / "in.json", [entry(name) for name in many[:3]])
    BranchAlignmentOrchestrator(
        components=fake_components(Recorder(), seconds=0),
        reports_dir=tmp_path / "r",
        progress=lambda done, total, result: seen.append((done, total, result["branch_name"])),
    ).run(path, repo.path)
    assert sorted(done for done, _, _ in seen) == [1, 2, 3]
    assert {total for _, total, _ in seen} == {3}


def test_progress_is_called_one_branch_at_a_time(repo: Repo, many: list[str], tmp_path: Path) -> None:
    """Branches finish on several threads; a callback that is not thread-safe still sees one call at a time."""
    inside = threading.Semaphore(1)
    overlaps: list[str] = []

    def slow_progress(done: int, total: int, result: dict[str, Any]) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(result["branch_name"])
            return
        time.sleep(0.05)
        inside.release()

    path = write_input(tmp_path / "in.json", [entry(name) for name in many[:6]])
    BranchAlignmentOrchestrator(
        settings(max_workers_per_target=3),
        components=fake_components(Recorder(), seconds=0),
        reports_dir=tmp_path / "r",
        progress=slow_progress,
    ).run(path, repo.path)
    assert overlaps == []


def test_progress_counts_up_in_order(
    repo: Repo, many: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first branch to finish is held up between being counted and being reported, while the other
    threads finish theirs: the callback still sees 1, 2, 3, ... in that order."""
    counted_by_ledger = RunLedger.branch_finished

    def held_up_first(ledger: RunLedger, result: BranchResult, **kwargs: Any) -> int:
        done = counted_by_ledger(ledger, result, **kwargs)
        if done == 1:
            time.sleep(0.5)
        return done

    monkeypatch.setattr(RunLedger, "branch_finished", held_up_first)
    seen: list[int] = []
    path = write_input(tmp_path / "in.json", [entry(name) for name in many[:6]])
    BranchAlignmentOrchestrator(
        settings(max_workers_per_target=3),
        components=fake_components(Recorder(), seconds=0),
        reports_dir=tmp_path / "r",
        progress=lambda done, total, result: seen.append(done),
    ).run(path, repo.path)
    assert seen == [1, 2, 3, 4, 5, 6]


def test_progress_is_told_each_branch_as_run_returns_it(repo: Repo, many: list[str], tmp_path: Path) -> None:
    """The callback gets the spec's per-branch dict (``branch_name``, ``status``, ...), the one ``run`` returns."""
    told: list[dict[str, Any]] = []
    path = write_input(tmp_path / "in.json", [entry(name) for name in many[:2]])
    result = BranchAlignmentOrchestrator(
        reports_dir=tmp_path / "r", progress=lambda done, total, branch: told.append(branch)
    ).run(path, repo.path)
    returned = result["orchestration_results"]["main"]["branches"]
    assert sorted(told, key=lambda branch: branch["branch_name"]) == returned
    assert {branch["status"] for branch in told} == {"completed"}


def test_a_progress_callback_that_raises_is_raised_once_the_run_is_done(
    repo: Repo, many: list[str], tmp_path: Path
) -> None:
    """A broken progress display is not called again; every branch is still aligned, the results are written,
    the exception is in the branch's log, and ``run`` raises from it, saying where the results are."""
    calls: list[int] = []

    def broken(done: int, total: int, result: dict[str, Any]) -> None:
        calls.append(done)
        raise ValueError("display gone")

    path = write_input(tmp_path / "in.json", [entry(name) for name in many[:3]])
    orchestrator = BranchAlignmentOrchestrator(
        settings(max_workers_per_target=1), reports_dir=tmp_path / "r", progress=broken
    )
    with pytest.raises(ProgressCallbackError) as raised:
        orchestrator.run(path, repo.path)
    assert calls == [1]
    results = json.loads((tmp_path / "r" / "alignment_results.json").read_text(encoding="utf-8"))
    assert results["overall_summary"]["total_successful"] == 3
    assert orchestrator.last_setup is not None
    assert str(raised.value) == (
        f"the progress callback raised ValueError on '{many[0]}' (1/3): display gone; it was not called again, "
        f"the run went on and its results are in {orchestrator.last_setup.folder.path / 'alignment_results.json'}"
    )
    assert isinstance(raised.value.__cause__, ValueError)
    log_text = (orchestrator.last_setup.folder.logs_dir / f"{many[0]}.log").read_text(encoding="utf-8")
    assert "ERROR alignment.orchestrator: the progress callback failed" in log_text
    assert "ValueError: display gone" in log_text


def test_configuration_forms_and_repo_path_from_config(repo: Repo, tmp_path: Path) -> None:
    repo.commit("only", {"o.txt": "o\n"}, parent=repo.tip("main"))
    config_file = tmp_path / "alignment.yaml"
    config_file.write_text(f"orchestration:\n  repo_path: {repo.path}\n  reports_dir: {tmp_path / 'out'}\n")
    path = write_input(tmp_path / "in.json", [entry("only")])
    result = BranchAlignmentOrchestrator(config_file).run(path)
    assert result["overall_summary"]["total_successful"] == 1
    assert (tmp_path / "out" / "alignment_results.json").exists()
    as_mapping = BranchAlignmentOrchestrator({"orchestration": {"log_per_branch": False}}, reports_dir=tmp_path / "m")
    assert as_mapping.run(path, repo.path)["overall_summary"]["total_successful"] == 1
    assert not (tmp_path / "m" / "latest" / "logs").exists()


def test_missing_repository_is_a_usage_problem(tmp_path: Path) -> None:
    path = write_input(tmp_path / "in.json", [entry("a")])
    with pytest.raises(UsageProblem, match="no repository"):
        BranchAlignmentOrchestrator().run(path)
    with pytest.raises(RepositoryError, match="not a git repository"):
        BranchAlignmentOrchestrator().run(path, tmp_path)


def test_custom_components_by_dotted_path(repo: Repo, tmp_path: Path) -> None:
    repo.commit("only", {"o.txt": "o\n"}, parent=repo.tip("main"))
    config = settings(doc_generator="tests.git.test_orchestrator:DocsNowhere")
    result = orchestrate(repo, tmp_path, ["only"], config)
    assert result["orchestration_results"]["main"]["branches"][0]["changes_summary"] == "nowhere.md"


class DocsNowhere:
    def __init__(self, config: Settings) -> None:
        self.config = config

    def document(self, record: object) -> str:
        return "nowhere.md"


class TakesNoSettings:
    def __init__(self) -> None:
        pass


@pytest.mark.parametrize(
    ("dotted", "problem"),
    [
        ("tests.git.no_such_module:X", "cannot load"),
        ("tests.git.test_orchestrator:Nope", "cannot load"),
        ("tests.git.test_orchestrator:Settings", "does not provide DocGenerator's method"),
        ("tests.git.test_orchestrator:TakesNoSettings", r"calling it with the settings raised TypeError\(.*argument"),
    ],
)
def test_bad_dotted_paths_are_config_errors(dotted: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Components.from_settings(settings(doc_generator=dotted))


def test_default_components_are_the_library_ones() -> None:
    components = Components.from_settings(Settings())
    assert isinstance(components.integration_utility, MergeOrRebaseIntegrator)
    assert isinstance(components.error_detector, ChangeErrorDetector)
    assert isinstance(components.doc_generator, MarkdownDocGenerator)


def test_many_targets_leak_no_file_descriptors(repo: Repo, tmp_path: Path) -> None:
    entries = []
    for index in range(25):
        target = f"target-{index}"
        repo.branch(target, "main")
        repo.commit(f"topic-{index}", {f"t{index}.txt": "x\n"}, parent=repo.tip("main"))
        entries.append(entry(f"topic-{index}", target))
    path = write_input(tmp_path / "in.json", entries)
    before = len(os.listdir("/proc/self/fd"))
    result = BranchAlignmentOrchestrator(reports_dir=tmp_path / "r").run(path, repo.path)
    assert result["overall_summary"]["total_successful"] == 25
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_a_target_override_no_branch_of_the_input_targets_is_named_at_the_start(repo: Repo, tmp_path: Path) -> None:
    """A misspelt ``targets:`` key would silently leave its target as the top level says; a key for a target
    another input uses is legitimate in a shared file, so it is a note, not an error."""
    repo.commit("science", {"s.txt": "s\n"}, parent=repo.tip("main"))
    repo.commit("f/one", {"one.txt": "1\n"}, parent=repo.tip("main"))
    repo.commit("f/two", {"two.txt": "2\n"}, parent=repo.tip("science"))
    overrides = {"scientfic": {"integration_strategy": "rebase"}, "main": {"max_workers": 1}, "zzz": {}}
    branches = load_branches(write_input(tmp_path / "in.json", [entry("f/one"), entry("f/two", "science")]))
    setup = set_up_run(settings(targets=overrides), branches, repo.path, reports_dir=tmp_path / "reports")
    setup.discard_scratch()
    assert setup.housekeeping == (
        "orchestration.targets.scientfic: no branch of the input has this target, "
        "so its overrides are not used (did you mean science?)",
        "orchestration.targets.zzz: no branch of the input has this target, "
        "so its overrides are not used (the input's targets: main, science)",
    )
    # a shard holds only part of the input's targets: the others are no sign of a misspelling
    shard = load_branches(branches.source, ShardSpec(1, 2))
    setup = set_up_run(settings(targets=overrides), shard, repo.path, reports_dir=tmp_path / "shard", record=False)
    setup.discard_scratch()
    assert (shard.targets, setup.housekeeping) == (("main",), ())
