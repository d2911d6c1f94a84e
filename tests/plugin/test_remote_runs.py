"""``pytest alignment/ --remote origin``: real sessions against a local bare remote, with ``-n 2``; ``--lf``
after a refused push; the pushing process killed between the backups' push and the branches' push."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alignment.scratch import is_alive
from alignment.undo import undo_run
from tests.conftest import Repo, entry, write_input
from tests.plugin.test_faults import wait_until
from tests.remotes import NAMES, Origin, hold_branch_pushes, hook, make_origin

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def origin(repo: Repo, tmp_path: Path) -> Origin:
    return make_origin(repo, tmp_path)


def command(origin: Origin, *extra: str) -> list[str]:
    """``pytest alignment/ --remote origin`` on the origin's clone (add ``-n 2`` for xdist workers)."""
    write_input(origin.tmp / "in.json", [entry(name) for name in NAMES])
    return [
        sys.executable, "-m", "pytest", str(PROJECT / "alignment"), "-q",
        "-o", f"cache_dir={origin.tmp / 'cache'}", "--input", str(origin.tmp / "in.json"),
        "--repo", str(origin.clone.path), "--remote", "origin", "--reports-dir", str(origin.tmp / "reports"), *extra,
    ]  # fmt: skip


def results(origin: Origin) -> dict[str, dict[str, Any]]:
    data = json.loads((origin.tmp / "reports" / "alignment_results.json").read_text())
    return {b["branch_name"]: b for group in data["orchestration_results"].values() for b in group["branches"]}


def test_a_refused_push_fails_the_run_and_lf_retries_exactly_that_branch(origin: Origin) -> None:
    hook(origin, 'case "$1" in refs/heads/feature-b) exit 1;; esac\nexit 0\n')
    first = subprocess.run(command(origin, "-n", "2"), cwd=PROJECT, capture_output=True, text=True, check=False)
    assert first.returncode == 1, first.stdout[-3000:]
    assert "3 branches: 2 aligned, 1 failed" in first.stdout
    done = results(origin)
    assert done["feature-b"]["errors_detected"] == ["push_rejected"]
    assert [done[name]["push"]["pushed"] for name in NAMES] == [True, False, True]
    assert {done[name]["worker"] for name in NAMES} <= {"gw0", "gw1"}
    origin.assert_safe()

    (origin.bare.path / "hooks" / "update").unlink()
    rerun = subprocess.run(command(origin, "-n", "2", "--lf"), cwd=PROJECT, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "1 passed in" in rerun.stdout
    assert list(results(origin)) == ["feature-b"]
    assert results(origin)["feature-b"]["push"]["pushed"] is True
    for name in NAMES:
        origin.assert_aligned(name)


def test_xdist_workers_leave_a_local_backup_to_the_controllers_push_to_remove_once_it_landed(origin: Origin) -> None:
    """The workers align, the controller pushes: auto_cleanup_backups removes each local backup the workers
    made only after its branch's push landed, and keeps the one of the branch the remote refused."""
    hook(origin, 'case "$1" in refs/heads/feature-b) exit 1;; esac\nexit 0\n')
    config = origin.tmp / "config.yaml"
    config.write_text("orchestration:\n  remote_backups: local\n  auto_cleanup_backups: true\n")
    done = subprocess.run(
        command(origin, "-n", "2", "--config", str(config)), cwd=PROJECT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stdout[-3000:]
    branches = results(origin)
    assert [branches[name]["push"]["pushed"] for name in NAMES] == [True, False, True]
    assert [origin.clone.exists(f"backup-{name}-pre-align") for name in NAMES] == [False, True, False]
    assert "backup 'backup-feature-a-pre-align' removed (auto_cleanup_backups)" in branches["feature-a"]["notes"]
    assert "backup 'backup-feature-b-pre-align' kept: the push did not land" in branches["feature-b"]["notes"]
    assert all("local_backup" not in branches[name]["push"] for name in NAMES)


def test_killed_between_pushing_the_backups_and_the_branches_then_a_rerun_finishes(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process that publishes (the controller; here without -n, also the one that aligns) dies while the
    remote receives the branches' push: the backups are on the remote, no branch moved, and a plain rerun
    reuses the backups and pushes."""
    # Scratch directories of their own: another test's run probing this run's lock would look like its owner.
    (origin.tmp / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(origin.tmp / "tmp"))
    block, reached = hold_branch_pushes(origin)
    controller = subprocess.Popen(
        command(origin), cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_until(lambda: reached.exists() or controller.poll() is not None, seconds=180)
    finally:  # the controller first: a git process killed before it would be seen to fail by a live controller,
        # which would then record the failed push and finish the run; then its git processes (groups of their own)
        groups = process_groups(descendants(controller.pid)) - {os.getpgid(0)}
        for group in sorted(groups, key=lambda group: group != controller.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        controller.wait()
    assert reached.exists()
    block.unlink()

    for name, old in origin.olds.items():
        assert origin.remote_tip(name) == old
        assert origin.remote_tip(f"backup-{name}-pre-align") == old
    (first_run,) = [path.name for path in (origin.tmp / "reports" / "runs").iterdir()]
    record = json.loads((origin.tmp / "reports" / "runs" / first_run / "run.json").read_text())
    wait_until(lambda: not is_alive(Path(record["scratch_dir"])), seconds=60)  # SIGKILL takes effect asynchronously

    rerun = subprocess.run(command(origin), cwd=PROJECT, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert f"run {first_run} did not finish" in rerun.stdout, rerun.stdout[-3000:]
    done = results(origin)
    for name in NAMES:
        assert done[name]["push"]["pushed"] is True
        assert done[name]["backup_branch"] == f"backup-{name}-pre-align"  # reused: the same commit
        origin.assert_aligned(name)
    origin.assert_safe()


def test_ctrl_c_while_pushing_publishes_what_landed_and_what_did_not(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: Ctrl-C while the controller pushes lets the running push finish and starts no other; the
    results say which branch landed and which was not pushed, the exit code is 2, and undo puts it back."""
    origin.bare.branch("next", "main")  # a second target: its branches are pushed after main's
    pid_file = origin.tmp / "controller.pid"
    monkeypatch.setenv("ALIGNMENT_TEST_PID_FILE", str(pid_file))
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # so that -p finds tests.plugin.pid_file
    hook(origin, f'case "$1" in refs/heads/feature-a) kill -INT "$(cat "{pid_file}")";; esac\nexit 0\n')
    argv = command(origin, "-p", "tests.plugin.pid_file")
    write_input(origin.tmp / "in.json", [entry("feature-a"), entry("feature-b", "next"), entry("feature-c", "next")])

    done = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, check=False)

    assert done.returncode == pytest.ExitCode.INTERRUPTED, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    branches = results(origin)
    landed = branches["feature-a"]
    assert (landed["status"], landed["push"]["pushed"]) == ("completed", True)
    assert origin.remote_tip("feature-a") == landed["new_tip"]
    for name in ("feature-b", "feature-c"):
        branch = branches[name]
        assert (branch["status"], branch["errors_detected"], branch["new_tip"]) == (
            "failed_integration",
            ["push_failed"],
            None,
        )
        assert branch["error_message"].startswith("not pushed: interrupted (Ctrl-C) before its push")
        assert origin.remote_tip(name) == origin.olds[name]
        assert "**Status:** failed_integration" in Path(branch["document"]).read_text(encoding="utf-8")
    run_id = json.loads((origin.tmp / "reports" / "alignment_results.json").read_text())["run_id"]
    audit = (origin.tmp / "reports" / "runs" / run_id / "audit.jsonl").read_text()
    assert '"run_interrupted"' in audit
    listed = subprocess.run(
        [sys.executable, "-m", "alignment", "runs", "--reports-dir", str(origin.tmp / "reports")],
        cwd=PROJECT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"{run_id}  1 ok, 2 failed, 0 not run; 1 branch moved" in listed.stdout
    undone = undo_run(origin.tmp / "reports", run_id)
    assert [item.outcome.value for item in undone.restorations] == ["restored"]
    origin.assert_safe()
    assert all(origin.remote_tip(name) == old for name, old in origin.olds.items())


def process_groups(pids: list[int]) -> set[int]:
    groups = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # a short-lived git process may be gone already
            groups.add(os.getpgid(pid))
    return groups


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (read from /proc)."""
    parents: dict[int, int] = {}
    for entry_path in Path("/proc").iterdir():
        if entry_path.name.isdigit():
            try:
                parents[int(entry_path.name)] = int((entry_path / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found.extend(frontier)
    return found


@pytest.mark.parametrize(
    ("remote", "message"),
    [
        ("upstream", "ERROR: --remote upstream: no such remote in "),
        ("a..b", 'ERROR: --remote: expected the name of a git remote, got "a..b"'),
    ],
)
def test_a_bad_remote_is_one_error_line_and_nothing_is_fetched(
    origin: Origin, pytester: pytest.Pytester, remote: str, message: str
) -> None:
    write_input(origin.tmp / "in.json", [entry(name) for name in NAMES])
    args = ["--input", str(origin.tmp / "in.json"), "--repo", str(origin.clone.path), f"--remote={remote}"]
    result = pytester.runpytest_inprocess(str(PROJECT / "alignment"), "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(line.startswith(message) for line in result.errlines), result.errlines
    assert not origin.clone.git("for-each-ref", "refs/alignment/")
