"""``--worker-clones DIR``: xdist workers (``--tx 2*popen//chdir=DIR``, as remote workers would be) that each
align in a clone of their own and push with a lease to a local bare remote; the controller keeps the report."""

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

from alignment.journal import MoveJournal
from tests.conftest import Repo, entry, write_input
from tests.plugin.test_faults import wait_until
from tests.plugin.test_remote_runs import descendants, process_groups
from tests.remotes import NAMES, Origin, hold_branch_pushes, hook, make_origin

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def origin(repo: Repo, tmp_path: Path) -> Origin:
    made = make_origin(repo, tmp_path)
    write_input(made.tmp / "in.json", [entry(name) for name in NAMES])
    (made.tmp / "workers").mkdir()
    return made


def command(origin: Origin, *extra: str) -> list[str]:
    """Two workers started in a directory of their own: the harness is imported, not read from this tree, and
    paths are given as ``--option=PATH`` (xdist rewrites a path argument of its own for such workers)."""
    return [
        sys.executable, "-m", "pytest", "-p", "plugins.alignment_plugin", "--pyargs", "alignment.test_branches",
        "-q", "-o", f"cache_dir={origin.tmp / 'cache'}", f"--input={origin.tmp / 'in.json'}",
        f"--repo={origin.clone.path}", "--remote", "origin", f"--reports-dir={origin.tmp / 'reports'}",
        f"--worker-clones={origin.tmp / 'clones'}", "--tx", f"2*popen//chdir={origin.tmp / 'workers'}",
        "--dist", "load", "--max-worker-restart", "0", *extra,
    ]  # fmt: skip


def run(origin: Origin, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(origin, *extra), cwd=PROJECT, capture_output=True, text=True, check=False)


def results(origin: Origin) -> dict[str, dict[str, Any]]:
    data = json.loads((origin.tmp / "reports" / "alignment_results.json").read_text())
    return {b["branch_name"]: b for group in data["orchestration_results"].values() for b in group["branches"]}


def refs(repo: Repo) -> str:
    return repo.git("for-each-ref", "--format=%(refname) %(objectname)")


def test_workers_align_and_push_from_their_own_clones_and_the_checkout_is_untouched(origin: Origin) -> None:
    before, status = refs(origin.clone), origin.clone.git("status", "--porcelain")
    done = run(origin)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 branches: 3 aligned, 0 failed" in done.stdout
    finished = results(origin)
    for name in NAMES:
        assert finished[name]["push"]["pushed"] is True
        assert finished[name]["push"]["replaced_remote_tip"] == origin.olds[name]
        assert finished[name]["worker"] in ("gw0", "gw1")
        origin.assert_aligned(name)
    origin.assert_safe()
    clones = sorted(path.name for path in (origin.tmp / "clones").glob("*.git"))
    assert clones == ["gw0.git", "gw1.git"]
    aligned = Repo(origin.tmp / "clones" / f"{finished['feature-a']['worker']}.git")
    assert aligned.git("rev-parse", "refs/alignment/aligned/origin/feature-a") == origin.remote_tip("feature-a")
    # The user's repository: the run fetched into its own namespace; no branch, index or file moved.
    assert {line for line in refs(origin.clone).splitlines() if "refs/alignment/" not in line} == set(
        before.splitlines()
    )
    assert origin.clone.git("status", "--porcelain") == status
    run_id = json.loads((origin.tmp / "reports" / "alignment_results.json").read_text())["run_id"]
    moves = MoveJournal(origin.tmp / "reports" / "runs" / run_id / "moves").moves()
    assert sorted(move.branch for move in moves) == sorted(NAMES)  # `alignment undo` reads them

    again = run(origin)  # the clones are a cache: refreshed by fetch, every branch is now up to date
    assert again.returncode == 0, again.stdout[-3000:]
    assert all(branch["push"]["aligned_ref"] is None for branch in results(origin).values())


def test_a_lease_lost_on_one_branch_is_push_rejected_and_the_others_land(origin: Origin) -> None:
    """Someone moves feature-b on the remote after the workers fetched it (while its backup is pushed)."""
    moved = origin.bare.git("rev-parse", "main")
    backup = "refs/heads/backup-feature-b-pre-align"
    hook(origin, f'case "$1" in {backup}) git update-ref refs/heads/feature-b {moved};; esac\n')
    done = run(origin)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "3 branches: 2 aligned, 1 failed" in done.stdout
    finished = results(origin)
    assert finished["feature-b"]["errors_detected"] == ["push_rejected"]
    assert "the lease was lost" in finished["feature-b"]["error_message"]
    assert origin.remote_tip("feature-b") == moved  # their commit stays
    for name in ("feature-a", "feature-c"):
        assert finished[name]["push"]["pushed"] is True
        origin.assert_aligned(name)


def test_a_worker_killed_between_the_backups_and_the_branches_push_failed_then_lf_finishes(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    (origin.tmp / "tmp").mkdir()  # scratch directories of their own: no other test's run probes this one
    monkeypatch.setenv("TMPDIR", str(origin.tmp / "tmp"))
    block, reached = hold_branch_pushes(origin)
    controller = subprocess.Popen(
        command(origin), cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: reached.exists() or controller.poll() is not None, seconds=180)
    finally:  # the workers first (no word to the controller), then their git processes; the controller lives on
        own = os.getpgid(controller.pid)
        below = [pid for pid in descendants(controller.pid) if pid != controller.pid]
        groups = process_groups(below) - {own, os.getpgid(0)}
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(pid) == own:
                    os.kill(pid, signal.SIGKILL)
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
    output, _ = controller.communicate(timeout=180)
    assert reached.exists()
    block.unlink()
    assert controller.returncode == 1, output[-3000:]
    finished = results(origin)
    unpushed = [name for name in NAMES if finished[name]["push"] and not finished[name]["push"]["pushed"]]
    assert unpushed
    for name in unpushed:
        assert finished[name]["errors_detected"] == ["push_failed"], finished[name]
        assert "ended before it reported its push" in finished[name]["error_message"]
        assert origin.remote_tip(name) == origin.olds[name]
    origin.assert_safe()

    rerun = run(origin, "--lf")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert set(results(origin)) == set(unpushed)
    for name in NAMES:
        origin.assert_aligned(name)
    origin.assert_safe()


def test_workers_merge_as_the_controllers_repository_on_a_machine_without_a_global_identity(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git's identity only in the controller's repository's own config (no global one, no ``GIT_AUTHOR_*``):
    the workers' clones author and commit the merges with it, as a run without worker clones would."""
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name)
    origin.clone.git("config", "user.name", "Controller")
    origin.clone.git("config", "user.email", "controller@example.com")
    done = run(origin)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in NAMES:
        origin.assert_aligned(name)
        made = origin.bare.git("log", "-1", "--format=%an <%ae>|%cn <%ce>", name)
        assert made == "Controller <controller@example.com>|Controller <controller@example.com>"


def test_a_worker_without_its_clone_fails_each_branch_with_the_reason_and_moves_nothing(origin: Origin) -> None:
    (origin.tmp / "file").write_text("x")
    done = run(origin, f"--worker-clones={origin.tmp / 'file' / 'clones'}")  # the last one counts
    assert done.returncode == 1, done.stdout[-3000:]
    for branch in results(origin).values():
        assert branch["status"] == "exception"
        assert "--worker-clones " in branch["error_message"]
        assert "file/clones: cannot create it" in branch["error_message"]
    for name, old in origin.olds.items():
        assert origin.remote_tip(name) == old


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--remote", "origin"), "ERROR: --worker-clones: expected xdist workers too (-n N, or --tx SPEC"),
        (("-n", "2"), "ERROR: --worker-clones: expected --remote NAME too"),
        (
            ("-n", "2", "--remote", "origin", "--config", "local-backups.yaml"),
            "ERROR: --worker-clones: remote_backups: local would leave each backup in a worker's clone",
        ),
        (
            ("-n", "2", "--remote", "origin", "--config", "atomic.yaml"),
            "ERROR: --worker-clones: push_atomic_per_target cannot hold, each worker pushes only its own part",
        ),
        (
            ("-n", "2", "--remote", "origin", "--plan"),
            "ERROR: --worker-clones: --plan cannot use it, the conflict matrix merges the predicted commits",
        ),
    ],
)
def test_worker_clones_without_a_remote_or_workers_is_one_error_line(
    origin: Origin, pytester: pytest.Pytester, extra: tuple[str, ...], message: str
) -> None:
    pytester.makefile(".yaml", **{"local-backups": "orchestration:\n  remote_backups: local\n"})
    pytester.makefile(".yaml", atomic="orchestration:\n  push_atomic_per_target: true\n")
    args = ["--input", str(origin.tmp / "in.json"), "--repo", str(origin.clone.path), *extra]
    result = pytester.runpytest_inprocess(
        str(PROJECT / "alignment"), "-p", "no:cacheprovider", "--worker-clones", str(origin.tmp / "clones"), *args
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert any(line.startswith(message) for line in result.errlines), result.errlines
    assert not origin.clone.git("for-each-ref", "refs/alignment/")
    assert not (origin.tmp / "clones").exists()
    assert not list(pytester.path.glob("**/run.json"))  # no run: the next one reports none that did not finish


def test_lf_workers_in_clones_order_their_items_by_the_controllers_memory_of_the_tries(
    origin: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's clone is another repository, so its own key of ``--lf``'s memory would find nothing: the
    controller hands it the memory, and every worker starts with the branch tried least recently."""
    assert run(origin).returncode == 0
    cache = origin.tmp / "cache" / "v" / "alignment"
    (tried,) = (cache / "last_tried").iterdir()  # the memory of the controller's input and repository
    (failed,) = (cache / "lastfailed").iterdir()
    ids = {name: f"::test_branch[{name}]" for name in NAMES}  # as workers collecting with --pyargs name them
    failed.write_text(json.dumps(dict.fromkeys(ids.values(), True)))
    runs = {ids["feature-a"]: 2, ids["feature-b"]: 1}  # feature-c never tried, feature-a tried last
    tried.write_text(json.dumps({"runs": 2, "tried": runs}))
    order = origin.tmp / "order"
    order.mkdir()
    monkeypatch.setenv("ALIGNMENT_TEST_ORDER", str(order))
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # so that -p finds tests.plugin.collected_order
    done = run(origin, "--lf", "-p", "tests.plugin.collected_order")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    laid = [ids["feature-c"], ids["feature-a"], ids["feature-b"]]  # gw0 takes the first, gw1 the last: c, b, a
    for worker in ("gw0", "gw1"):
        assert json.loads((order / f"{worker}.json").read_text()) == laid
