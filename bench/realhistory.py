"""Build a benchmark workload from a real repository's own history: real forks, real commits, real conflicts.

Give it a clone of a public repository with deep history (pytest-dev/pytest by default: 17,000 commits, 7,700
on ``main``'s first-parent line) and the commit to start from (``--pin``, reachable from one of the clone's
branches: e.g. git/git's ``master`` for a C project's history); nothing of that repository is kept
in this project: only this script, which writes the workload into a cache directory outside git
(``bench/results/`` is ignored) and reuses it when it is already there.

From the pinned commit's first-parent line ``F`` it makes:

* three targets, ``main``, ``release`` and ``maint``, at ``F`` positions 300, 700 and 1,100 commits before the
  pin: each moved on by real commits since its branches forked;
* ``--branches`` branches spread over the targets (seed 11): each forks at a real older commit of its
  target's line (5 to 400 commits back) and carries 1 to 4 real *later* commits (from the 300 after the
  target; one branch in six also the one of those that changed the most paths), cherry-picked onto the
  fork with ``git cherry-pick -X theirs`` in a scratch worktree (a commit that does not apply even so is
  skipped). Later changes on an old fork meet what the target changed meanwhile: real conflicts, some of
  them over many paths. Three branches in ten carry nothing (a fast-forward), one in thirty forks at its
  target's tip (already up to date).

Every commit is made with a fixed committer and date, so the same source, pin and arguments give the same
repository, commit for commit. No commit-graph is written: the benchmark's floor pays for writing it, as
the harness does when one is missing. ``categorized_branches.json`` gives each branch ``bench_expected``:
``failed_integration`` when ``git merge-tree`` of the branch with its target conflicts, else ``completed``.

This script runs git itself (plain subprocess, inside ``bench/`` only) to build the workload.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.generate import Scenario

PIN = "df87db7b0462fb764ef73fa00561adf8ad047572"  # pytest-dev/pytest main, 2026-08-20
CACHE = Path(__file__).resolve().parent / "results"
TARGETS = {"main": 300, "release": 700, "maint": 1100}  # commits before the pin on its first-parent line
LATER = 300  # later commits a branch may carry come from this many after its target
SEED = 11
UP_TO_DATE, BEHIND = 1 / 30, 0.3  # shares of branches forked at their target's tip / carrying nothing
WIDE = 1 / 6  # share of branches that also carry the later commit that changed the most paths
_FIXED = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_COMMITTER_NAME": "Benchmark",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
    "LC_ALL": "C",
}


def _git(repo: Path, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_FIXED}
    for variable in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(variable, None)
    return subprocess.run(["git", "-C", str(repo), "-c", "core.hooksPath=/dev/null", "-c", "gc.auto=0", *args],
                          input=stdin, capture_output=True, text=True, check=check, env=env)  # fmt: skip


def build(source: Path, branches: int = 400, pin: str = PIN, cache: Path = CACHE) -> Scenario:
    """The workload for ``source`` at ``pin`` with ``branches`` branches, built once into ``cache``."""
    directory = cache / f"realhistory-{pin[:12]}-{branches}"
    input_path = directory / "categorized_branches.json"
    if not (directory / "complete").exists():
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        _build(source, directory / "repo.git", input_path, branches, pin)
        (directory / "complete").write_text("built\n")
    entries = json.loads(input_path.read_text())["branches"]
    expected = {entry["branch_name"]: entry["bench_expected"] for entry in entries}
    targets = {entry["branch_name"]: entry["assigned_target"] for entry in entries}
    # Most branches conflict: the circuit breaker would stop the run; every branch is to be measured.
    settings: dict[str, object] = {"enable_circuit_breaker": False}
    return Scenario(directory / "repo.git", input_path, expected, targets, False, settings)


def _build(source: Path, repo: Path, input_path: Path, branches: int, pin: str) -> None:
    _git(repo.parent, "init", "--quiet", "--bare", "--initial-branch=main", str(repo))
    _git(repo, "fetch", "--quiet", "--no-tags", str(source.resolve()), "+refs/heads/*:refs/upstream/*")
    line = _git(repo, "rev-list", "--first-parent", "--reverse", pin).stdout.split()
    merges = set(_git(repo, "rev-list", "--first-parent", "--merges", pin).stdout.split())
    positions = {target: len(line) - 1 - back for target, back in TARGETS.items()}
    for target, position in positions.items():
        _git(repo, "update-ref", f"refs/heads/{target}", line[position])
    widest = {target: _widest(repo, line[at + 1 : at + 1 + LATER]) for target, at in positions.items()}
    rng = random.Random(SEED)
    worktree = Path(tempfile.mkdtemp(prefix="realhistory-")) / "worktree"  # outside the project: no tool scans it
    _git(repo, "worktree", "add", "--quiet", "--detach", str(worktree), line[positions["main"]])
    entries: list[dict[str, Any]] = []
    try:
        for index in range(branches):
            target = list(TARGETS)[index % len(TARGETS)]
            at = positions[target]
            name = f"real/{target}-{index:04d}"
            roll = rng.random()
            fork = at if roll < UP_TO_DATE else at - rng.randint(5, 400)
            later = rng.sample(line[at + 1 : at + 1 + LATER], rng.randint(1, 4))
            if rng.random() < WIDE:
                later.append(widest[target])
            behind = UP_TO_DATE <= roll < UP_TO_DATE + BEHIND
            carried = [] if behind else sorted(set(later), key=line.index)
            tip = _carry(worktree, line[fork], carried, merges)
            _git(repo, "update-ref", f"refs/heads/{name}", tip)
            entries.append({"branch_name": name, "assigned_target": target, "confidence": 0.9, "tags": ["real"],
                            "cluster_id": index % 7})  # fmt: skip
    finally:
        _git(repo, "worktree", "remove", "--force", str(worktree))
        shutil.rmtree(worktree.parent, ignore_errors=True)
    for entry in entries:
        done = _git(repo, "merge-tree", "--write-tree", entry["branch_name"], entry["assigned_target"], check=False)
        entry["bench_expected"] = "completed" if done.returncode == 0 else "failed_integration"
    for ref in _git(repo, "for-each-ref", "--format=%(refname)", "refs/upstream/").stdout.split():
        _git(repo, "update-ref", "-d", ref)
    _git(repo, "repack", "-a", "-d", "-q")
    _git(repo, "prune")  # the merges above wrote loose objects: no run may find its merge already written
    for stale in (repo / "objects" / "info").glob("commit-graph*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    input_path.write_text(json.dumps({"branches": entries}, indent=1))


def _widest(repo: Path, commits: list[str]) -> str:
    """The commit of ``commits`` that changed the most paths (against its first parent): carried onto an
    old fork, it conflicts over many paths."""
    counts = _git(repo, "diff-tree", "--stdin", "-r", "--name-only", "-m", "--first-parent", stdin="\n".join(commits))
    changed: dict[str, int] = dict.fromkeys(commits, 0)
    current = ""
    for text in counts.stdout.splitlines():
        if text in changed:
            current = text
        elif text:
            changed[current] += 1
    return max(commits, key=lambda commit: changed[commit])


def _carry(worktree: Path, fork: str, commits: list[str], merges: set[str]) -> str:
    """Cherry-pick ``commits`` onto ``fork`` (a commit that does not apply is skipped); the new tip."""
    _git(worktree, "checkout", "--quiet", "--detach", "--force", fork)
    for commit in commits:
        mainline = ["-m", "1"] if commit in merges else []
        picked = _git(worktree, "cherry-pick", "--allow-empty", "-X", "theirs", *mainline, commit, check=False)
        if picked.returncode != 0:
            _git(worktree, "cherry-pick", "--abort", check=False)
            _git(worktree, "reset", "--quiet", "--hard", check=False)
    return _git(worktree, "rev-parse", "HEAD").stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a clone of the source repository (e.g. pytest-dev/pytest)")
    parser.add_argument("--branches", type=int, default=400)
    parser.add_argument("--pin", default=PIN, help="the source commit whose first-parent line is used")
    parser.add_argument("--cache", type=Path, default=CACHE)
    arguments = parser.parse_args()
    workload = build(arguments.source, arguments.branches, arguments.pin, arguments.cache)
    conflicts = sum(status == "failed_integration" for status in workload.expected.values())
    print(f"{workload.repo}\n{workload.input_path}\n{len(workload.expected)} branches, {conflicts} conflict")


if __name__ == "__main__":
    main()
