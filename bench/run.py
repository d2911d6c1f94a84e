"""Benchmark: our pytest run and orchestrator against a naive loop and the ``merge-tree`` floor.

    python bench/run.py                      # 50 / 200 / 1000 branches and the 30,000-file repository
    python bench/run.py --sizes 50 --big 0   # a quick run

Each approach gets its own copy of the same generated repository (with a commit-graph, so every approach
enjoys git's cache equally) and runs as a separate process tree:

  (a) pytest   ``pytest alignment/ -n 2 --input ... --repo ...``, pytest start-up included
  (b) orch.    ``BranchAlignmentOrchestrator`` with 2 threads per target, Python start-up included
  (c) naive    a shell loop: ``git worktree add`` the branch, ``git merge`` the target, remove the worktree
  (d) floor    ``git merge-tree --write-tree`` per branch, 2 at a time (``xargs -P 2``), nothing else

Wall time is measured around the process; peak memory is the largest sum of resident memory over the
process and all its descendants (controller, workers, git children), sampled every 10 ms. Every run is
verified: each branch's outcome is the one the generator intended, and each merge commit's tree is the
tree ``git merge-tree`` gives for the same two commits. A run that fails verification is marked so.

This file runs git itself for the competitors it measures; the library's own git calls stay in
``alignment/git.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from alignment.resources import tree_pss_bytes, tree_rss_bytes
from bench.generate import Scenario, generate

PROJECT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Measurement:
    approach: str
    seconds: float
    peak_mb: float
    peak_pss_mb: float
    verified: str


def measure(argv: list[str], cwd: Path | None = None) -> tuple[float, tuple[float, float], str]:
    """Run ``argv``; its wall time, the peaks of its process tree's summed RSS and PSS in MB, its output."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
        peak = peak_pss = 0
        sampler_done = threading.Event()

        def sample() -> None:
            nonlocal peak, peak_pss
            while not sampler_done.is_set():
                peak = max(peak, tree_rss_bytes(process.pid) or 0)
                peak_pss = max(peak_pss, tree_pss_bytes(process.pid) or 0)
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        process.wait()
        seconds = time.perf_counter() - started
        sampler_done.set()
        sampler.join()
        output.seek(0)
        return seconds, (peak / 1e6, peak_pss / 1e6), output.read().decode("utf-8", "replace")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def tips(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads/")
    return dict(line.split(" ", 1) for line in out.splitlines())


def floor_trees(repo: Path, branches: list[str]) -> dict[str, str | None]:
    """What ``git merge-tree`` makes of each branch and main: the tree, or None on a conflict."""
    trees: dict[str, str | None] = {}
    for branch in branches:
        done = subprocess.run(
            ["git", "-C", str(repo), "merge-tree", "--write-tree", branch, "main"],
            capture_output=True,
            text=True,
            check=False,
        )
        trees[branch] = done.stdout.split()[0] if done.returncode == 0 else None
    return trees


def verify_merges(copy: Path, before: dict[str, str], trees: dict[str, str | None], moved: set[str]) -> str:
    """Every branch in ``moved`` is now at a commit whose tree is the floor's; every other is unchanged."""
    after = tips(copy)
    target = before["main"]
    for branch, tree in trees.items():
        if branch not in moved:
            if after[branch] != before[branch]:
                return f"FAILED: {branch} moved"
            continue
        if tree is None or git(copy, "rev-parse", f"{after[branch]}^{{tree}}") != tree:
            return f"FAILED: {branch} has the wrong tree"
        contains = ["git", "-C", str(copy), "merge-base", "--is-ancestor", target, after[branch]]
        if subprocess.run(contains, check=False).returncode != 0:
            return f"FAILED: {branch} does not contain main"
    return "ok"


def verify_results(
    copy: Path, reports: Path, scenario: Scenario, before: dict[str, str], trees: dict[str, str | None]
) -> str:
    results = json.loads((reports / "alignment_results.json").read_text())
    statuses = {b["branch_name"]: b for g in results["orchestration_results"].values() for b in g["branches"]}
    wrong = [name for name, expected in scenario.expected.items() if statuses[name]["status"] != expected]
    if wrong:
        return f"FAILED: {len(wrong)} statuses, e.g. {wrong[0]}"
    moved = {name for name, branch in statuses.items() if branch["new_tip"] not in (None, branch["old_tip"])}
    return verify_merges(copy, before, trees, moved)


def run_size(work: Path, label: str, scenario: Scenario, naive: bool) -> list[Measurement]:
    template = scenario.repo
    git(template, "commit-graph", "write", "--reachable")
    before = tips(template)
    branches = list(scenario.expected)
    trees = floor_trees(template, branches)
    clean = {name for name, status in scenario.expected.items() if status != "failed_integration"}

    def copy(name: str) -> Path:
        target = work / f"{label}-{name}.git"
        shutil.copytree(template, target, symlinks=True)
        return target

    measurements = []
    repo = copy("pytest")
    reports = work / f"{label}-pytest-reports"
    seconds, peak, _ = measure(
        [
            sys.executable,
            "-m",
            "pytest",
            str(PROJECT / "alignment"),
            "-n",
            "2",
            "-q",
            "--input",
            str(scenario.input_path),
            "--repo",
            str(repo),
            "--reports-dir",
            str(reports),
            "-p",
            "no:cacheprovider",
        ],
        cwd=PROJECT,
    )
    measurements.append(
        Measurement("(a) pytest -n 2", seconds, *peak, verify_results(repo, reports, scenario, before, trees))
    )
    repo = copy("orchestrator")
    reports = work / f"{label}-orchestrator-reports"
    code = (
        "import sys; from alignment.orchestrator import BranchAlignmentOrchestrator as O; "
        "O({'orchestration': {'max_workers_per_target': 2}}, reports_dir=sys.argv[3]).run(*sys.argv[1:3])"
    )
    seconds, peak, _ = measure([sys.executable, "-c", code, str(scenario.input_path), str(repo), str(reports)])
    measurements.append(
        Measurement("(b) orchestrator", seconds, *peak, verify_results(repo, reports, scenario, before, trees))
    )
    if naive:
        repo = copy("naive")
        names = work / f"{label}-names.txt"
        names.write_text("\n".join(branches) + "\n")
        script = (
            f'wt={work}/{label}-naive-wt; while read -r b; do git -C "{repo}" worktree add -q "$wt" "$b" && '
            f'{{ git -C "$wt" merge -q --no-edit main >/dev/null 2>&1 || git -C "$wt" merge --abort; }}; '
            f'git -C "{repo}" worktree remove --force "$wt"; done < "{names}"'
        )
        seconds, peak, _ = measure(["bash", "-c", script])
        measurements.append(Measurement("(c) naive loop", seconds, *peak, verify_merges(repo, before, trees, clean)))
    repo = copy("floor")
    names = work / f"{label}-names.txt"
    names.write_text("\n".join(branches) + "\n")
    seconds, peak, _ = measure(
        ["bash", "-c", f'xargs -P 2 -n 1 git -C "{repo}" merge-tree --write-tree main < "{names}" > /dev/null']
    )
    measurements.append(Measurement("(d) merge-tree floor", seconds, *peak, "ok"))
    return measurements


def table(label: str, branches: int, measurements: list[Measurement]) -> str:
    floor = next(m.seconds for m in measurements if m.approach.startswith("(d)"))
    naive = next((m.seconds for m in measurements if m.approach.startswith("(c)")), None)
    header = "| approach | wall s | x floor | naive / this | peak RSS MB | peak PSS MB | verified |"
    lines = [f"\n{label}: {branches} branches", header, "|---|---:|---:|---:|---:|---:|---|"]
    for m in measurements:
        versus_naive = f"{naive / m.seconds:.1f}" if naive else "-"
        lines.append(
            f"| {m.approach} | {m.seconds:.2f} | {m.seconds / floor:.2f} | {versus_naive} | "
            f"{m.peak_mb:.0f} | {m.peak_pss_mb:.0f} | {m.verified} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="branch alignment benchmark")
    parser.add_argument("--sizes", type=int, nargs="*", default=[50, 200, 1000])
    parser.add_argument("--big", type=int, default=50, help="branches in the 30,000-file repository (0: skip)")
    parser.add_argument("--naive-up-to", type=int, default=1000, help="skip the naive loop above this size")
    parser.add_argument("--keep", type=Path, help="keep the generated repositories here")
    arguments = parser.parse_args()
    work = arguments.keep or Path(tempfile.mkdtemp(prefix="alignment-bench-"))
    cases = [(f"{size}", size, dict(files=2000, depth=1000)) for size in arguments.sizes]
    if arguments.big:
        cases.append(("30k-files", arguments.big, dict(files=30000, depth=200)))
    try:
        for label, size, shape in cases:
            scenario = generate(work / f"gen-{label}", size, **shape)  # type: ignore[arg-type]
            print(table(label, size, run_size(work, label, scenario, size <= arguments.naive_up_to)), flush=True)
    finally:
        if arguments.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
