"""Benchmark: our pytest run and orchestrator against a naive loop and the ``merge-tree`` floor.

Run it from the project root (``bench`` is not an installed package)::

    python -m bench.run                                    # 50 / 200 / 1000 branches and the 30,000-file repository
    python -m bench.run --sizes 50 --big 0 --repeat 1      # a quick run
    python -m bench.run --sizes 50,200,1000 --pytest-workers 2,4 --output /tmp/bench_table.md
    python -m bench.run --sizes 1000 --big 0 --settings '{"explain_budget_merges": 0}'   # without a feature

Cases: ``--sizes`` repositories of 2,000 files and 1,000 target commits, plus (unless ``--big 0``) one of
30,000 files and 200 target commits with ``--big`` branches, all written by ``bench.generate`` with its fixed
seed and dates, so the same arguments give the same repository (the table notes give ``main``'s commit).

Approaches, each a separate process tree started from the project root:

  (a) pytest   ``pytest alignment/ -n N --input ... --repo ...``, one row per N of ``--pytest-workers``,
               pytest start-up included
  (b) orch.    ``BranchAlignmentOrchestrator`` with 2 threads per target, Python start-up included
  (c) naive    a shell loop: ``git worktree add`` the branch, ``git merge`` the target, remove the worktree
  (d) floor    ``git merge-tree --write-tree`` per branch, 2 at a time (``xargs -P 2``), nothing else
  (e) plan     ``pytest alignment/ -n 2 --plan ...``: the same prediction without moving anything
  (g) remote   ``pytest alignment/ -n 2 --remote origin ...`` in a clone, the copy as the remote: one fetch,
               align, publish (backups, then branches with a lease)
  (h) orch. remote: the orchestrator (2 threads) with ``remote: origin``, the same way
  (i) remote floor: in a clone, one ``git fetch`` of the listed refs, ``merge-tree`` + ``commit-tree`` per
               branch (2 at a time), one ``git push`` of every clean merge with a lease each
  (j) worker clones: (g) with ``--tx 2*popen//chdir=DIR --worker-clones DIR``: each worker fetches into a
               clone of its own (made by the run: the cold case) and pushes its own branches; only for cases
               of up to ``WORKER_CLONES_UP_TO`` branches
  (k) pytest alone: ``pytest -n 2`` of a no-op test parametrized with the same branch names, nothing else:
               what pytest and xdist cost for that many items (Hypothesis's plugin blocked, as an alignment
               run unregisters it)

For (g) to (j) the run's repository copy is a bare remote, and a clone of it is made before the clock
starts (with a commit-graph, as the copies of the other approaches have); verification reads the remote. The
notes give the push cost per branch: the publishing step's time from the run's audit trail (``push``
event), divided by the branches it pushed, and the floor's one push divided by its refs.

Every run, timed or sampled, gets its own fresh copy of the same unaligned repository (written with a
commit-graph, so every approach enjoys git's cache equally); copying is not timed, and dirty pages are
flushed (``sync``) before the clock starts. The reference merge trees are computed on a throwaway copy, so no
approach finds the merge results already in the object store.

Wall time: each approach except the naive loop runs ``--repeat`` times (default 3) with nothing sampling it,
and the table gives the median (of the verified runs, should any fail). Rounds alternate between approaches
(a, b, d, a, b, d, ...), so slow drift of the machine hits all of them alike.

Memory: one more run per approach is sampled every 10 ms by a thread of this process; the table gives the
peak of the summed RSS and the peak of the summed PSS over the process and all its descendants (controller,
xdist workers, git children; see ``alignment.resources``). That run's wall time is not used.

The naive loop is slow (minutes on the 30,000-file repository), so it runs once: that single run is both
timed and sampled, every 100 ms instead of 10 ms. It runs one git process at a time, so the sampler thread
has the second core to itself; the notes give the CPU share the sampler used.

Verification, after every run: each branch's status is the one the generator intended, each moved branch is
at a commit that contains the target and whose tree is the tree ``git merge-tree`` gives for the same two
commits, and every other branch is unchanged. The naive loop has no statuses: every branch the generator
expects to merge without conflict must be merged like that. The floor must have written every reference
tree. The verified column counts the runs of the row; the first failure is quoted.

Trust: the notes give a hash of the code under test at the start of every run (and warn if it changed during
the benchmark), every timed run's wall time, and the CPU steal time (what the hypervisor gave to other VMs),
naming rows where a timed run lost 5% or more of the machine that way.

Output: a Markdown table with notes, on stdout and, with ``--output PATH``, in that file (rewritten after
every case, so a long run leaves partial results). Progress goes to stderr.

This file runs git itself for the competitors it measures; the library's own git calls stay in
``alignment/git.py``.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil

from alignment.config import from_mapping
from alignment.errors import ConfigError
from alignment.proctree import tree_rss_bytes, tree_sum
from bench import realhistory
from bench.generate import Scenario, generate

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE_EVERY = 0.01
NAIVE_SAMPLE_EVERY = 0.1
FLOOR_PARALLEL = 2
ORCHESTRATOR_THREADS = 2
PLAN_WORKERS = 2
WORKER_CLONES_UP_TO = 200  # (j) makes a clone per worker in every run: kept to the smaller cases
STEAL_WARNING = 0.05  # a timed run that lost this share of the machine to other VMs is named in the notes


# --- running and sampling one process tree ---------------------------------------------------------------


def tree_pss_bytes(root_pid: int) -> int | None:
    """Summed proportional memory (shared pages split between their users) of ``root_pid``'s tree."""
    return tree_sum(root_pid, _pss_bytes)


def _pss_bytes(process: psutil.Process) -> int:
    """A process's PSS, or its RSS where its memory map may not be read (another user's process)."""
    try:
        return int(process.memory_full_info().pss)
    except psutil.AccessDenied:
        return int(process.memory_info().rss)


@dataclass(frozen=True)
class Peaks:
    """What a sampler saw: peak summed RSS and PSS, and what the sampling itself cost."""

    rss_mb: float
    pss_mb: float
    samples: int
    sampler_cpu_seconds: float


class Sampler:
    """Samples the summed RSS and PSS of a process tree from a thread every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self._rss = self._pss = self._samples = 0
        self._cpu = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Peaks:
        self._done.set()
        self._thread.join()
        return Peaks(self._rss / 1e6, self._pss / 1e6, self._samples, self._cpu)

    def _sample(self) -> None:
        started = time.thread_time()
        while not self._done.is_set():
            self._rss = max(self._rss, tree_rss_bytes(self.pid) or 0)
            self._pss = max(self._pss, tree_pss_bytes(self.pid) or 0)
            self._samples += 1
            self._done.wait(self.interval)
        self._cpu = time.thread_time() - started


@dataclass(frozen=True)
class Execution:
    seconds: float
    returncode: int
    output: str
    peaks: Peaks | None
    steal: float  # share of the machine's CPU time the hypervisor gave to others meanwhile


def steal_seconds() -> float:
    """CPU time stolen by the hypervisor since boot, over all cores (0 without a Linux ``/proc/stat``)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def execute(argv: list[str], sample_every: float | None) -> Execution:
    """Run ``argv`` in the project root; with ``sample_every``, sample its process tree's memory meanwhile.

    Dirty pages are flushed first, so the run does not pay for writing back what came before it.
    """
    os.sync()
    with tempfile.TemporaryFile() as output:
        stolen = steal_seconds()
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=PROJECT, stdout=output, stderr=subprocess.STDOUT, env=run_environment())
        sampler = Sampler(process.pid, sample_every) if sample_every is not None else None
        if sampler is not None:
            sampler.start()
        returncode = process.wait()
        seconds = time.perf_counter() - started
        steal = (steal_seconds() - stolen) / (seconds * (os.cpu_count() or 1))
        peaks = sampler.stop() if sampler is not None else None
        output.seek(0)
        return Execution(seconds, returncode, output.read().decode("utf-8", "replace"), peaks, steal)


# --- git helpers and verification ------------------------------------------------------------------------


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def tips(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads/")
    return dict(line.split(" ", 1) for line in out.splitlines())


def floor_trees(repo: Path, scenario: Scenario) -> tuple[dict[str, str | None], dict[str, frozenset[str]]]:
    """What ``git merge-tree`` makes of each branch and its target: the tree (None on a conflict), and the
    conflicted paths of each conflicting branch.

    ``merge-tree --write-tree`` writes its trees and blobs into ``repo``: give it a throwaway copy.
    """
    trees: dict[str, str | None] = {}
    conflicts: dict[str, frozenset[str]] = {}
    for branch in scenario.expected:
        done = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "merge-tree",
                "--write-tree",
                "-z",
                "--name-only",
                branch,
                scenario.target(branch),
            ],
            capture_output=True,
            check=False,
        )
        fields = done.stdout.decode("utf-8", "surrogateescape").split("\0")
        trees[branch] = fields[0] if done.returncode == 0 else None
        if done.returncode == 1:
            conflicts[branch] = frozenset(fields[1 : fields.index("", 1)])
    return trees, conflicts


@dataclass(frozen=True)
class Reference:
    """The unaligned repository's branch tips and, per branch, the tree a correct merge with main has."""

    scenario: Scenario
    before: dict[str, str]
    trees: dict[str, str | None]
    conflicts: dict[str, frozenset[str]]

    @property
    def branches(self) -> list[str]:
        return list(self.scenario.expected)

    @property
    def mergeable(self) -> set[str]:
        return {name for name, status in self.scenario.expected.items() if status != "failed_integration"}


def verify_merges(copy: Path, reference: Reference, moved: set[str]) -> str:
    """Every branch in ``moved`` is now at a commit whose tree is the floor's; every other is unchanged."""
    after = tips(copy)
    targets = set(reference.scenario.targets.values()) | {"main"}
    moved_targets = [target for target in targets if after.get(target) != reference.before.get(target)]
    if moved_targets:
        return f"FAILED: {moved_targets[0]} moved"
    for branch, tree in reference.trees.items():
        target = reference.before[reference.scenario.target(branch)]
        if branch not in moved:
            if after[branch] != reference.before[branch]:
                return f"FAILED: {branch} moved"
            continue
        if tree is None or git(copy, "rev-parse", f"{after[branch]}^{{tree}}") != tree:
            return f"FAILED: {branch} has the wrong tree"
        contains = ["git", "-C", str(copy), "merge-base", "--is-ancestor", target, after[branch]]
        if subprocess.run(contains, check=False).returncode != 0:
            return f"FAILED: {branch} does not contain its target"
    return "ok"


def verify_results(copy: Path, reports: Path, reference: Reference, planned: bool = False) -> str:
    """The run's ``alignment_results.json`` has the intended statuses, and the branches moved accordingly;
    a plan's ``alignment_plan.json`` has them too, and nothing moved."""
    results_path = reports / ("alignment_plan.json" if planned else "alignment_results.json")
    if not results_path.exists():
        return f"FAILED: no {results_path.name}"
    results = json.loads(results_path.read_text())
    statuses = {b["branch_name"]: b for g in results["orchestration_results"].values() for b in g["branches"]}
    missing = [name for name in reference.scenario.expected if name not in statuses]
    if missing:
        return f"FAILED: {len(missing)} branches missing, e.g. {missing[0]}"
    expected = reference.scenario.expected
    wrong = [name for name, status in expected.items() if statuses[name]["status"] != status]
    if wrong:
        return f"FAILED: {len(wrong)} statuses, e.g. {wrong[0]} is {statuses[wrong[0]]['status']}"
    unexplained = [
        name
        for name, paths in reference.conflicts.items()
        if {c["path"] for c in statuses[name]["culprits"]}
        | {p for g in statuses[name]["unexplained"] for p in g["paths"]}
        != paths
    ]
    if unexplained:
        return (
            f"FAILED: {len(unexplained)} conflicts neither explained nor listed as unexplained, e.g. {unexplained[0]}"
        )
    moved = {name for name, branch in statuses.items() if branch["new_tip"] not in (None, branch["old_tip"])}
    return verify_merges(copy, reference, set() if planned else moved)


def explain_cost(reports: Path) -> str:
    """Mean seconds of a conflicting branch (its explanation included) against a clean merge, from a run's
    results: the issue's "explaining a conflicting branch costs at most 5x aligning a clean one"."""
    results = json.loads((reports / "alignment_results.json").read_text())
    branches = [b for g in results["orchestration_results"].values() for b in g["branches"]]
    conflicting = [
        b["integration_time_seconds"] for b in branches if "merge_conflict_unresolvable" in b["errors_detected"]
    ]
    clean = [b["integration_time_seconds"] for b in branches if b["status"] == "completed" and b["action"] == "merge"]
    if not conflicting or not clean:
        return ""
    conflict_mean, clean_mean = statistics.mean(conflicting), statistics.mean(clean)
    unexplained = sum(bool(b["unexplained"]) for b in branches)
    return (
        f"{len(conflicting)} conflicting branches {conflict_mean * 1000:.0f} ms each on average, {len(clean)} clean "
        f"merges {clean_mean * 1000:.0f} ms: {conflict_mean / clean_mean:.1f}x; {unexplained} with unexplained paths"
    )


def verify_floor(copy: Path, reference: Reference) -> str:
    """Every tree the reference merges produced now exists in the floor's copy."""
    wanted = sorted({tree for tree in reference.trees.values() if tree is not None})
    found = git(copy, "cat-file", "--batch-check=%(objectname) %(objecttype)", stdin="\n".join(wanted) + "\n")
    missing = [line for line in found.splitlines() if not line.endswith(" tree")]
    return f"FAILED: {len(missing)} merge trees not written" if missing else "ok"


# --- the approaches --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """Where one run works: its repository copy, its reports directory, its scratch files."""

    repo: Path
    reports: Path
    scratch: Path


@dataclass(frozen=True)
class Approach:
    name: str
    command: Callable[[Workspace], list[str]]
    verify: Callable[[Workspace], str]
    describe: Callable[[Workspace], str] | None = None  # a figure of the run worth a note (explanation cost)
    single_run: bool = False  # time once, and sample that same run (every NAIVE_SAMPLE_EVERY seconds)


def approaches(reference: Reference, pytest_workers: list[int], naive: bool, only: str | None) -> list[Approach]:
    """The approaches of one case; ``only``: the letters of those to run (e.g. ``adghi``), None for all."""
    scenario = reference.scenario

    def pytest_command(workers: int, *extra: str) -> Callable[[Workspace], list[str]]:
        def command(space: Workspace) -> list[str]:
            config = space.scratch / "alignment.yaml"  # JSON is YAML
            config.write_text(json.dumps({"orchestration": scenario.orchestration}))
            return [
                *(sys.executable, "-m", "pytest", str(PROJECT / "alignment"), "-n", str(workers), "-q"),
                *("--input", str(scenario.input_path), "--repo", str(space.repo), "--config", str(config)),
                *("--reports-dir", str(space.reports), "-p", "no:cacheprovider", *extra),
            ]

        return command

    def orchestrator_command(repo: Path, reports: Path, **more: object) -> list[str]:
        """The orchestrator with 2 threads per target, the case's configuration and ``more`` settings."""
        settings = {**scenario.orchestration, "max_workers_per_target": ORCHESTRATOR_THREADS, **more}
        code = (
            "import sys; from alignment.orchestrator import BranchAlignmentOrchestrator as O; "
            f"O({{'orchestration': {settings!r}}}, reports_dir=sys.argv[3]).run(*sys.argv[1:3])"
        )
        return [sys.executable, "-c", code, str(scenario.input_path), str(repo), str(reports)]

    def orchestrator(space: Workspace) -> list[str]:
        return orchestrator_command(space.repo, space.reports)

    def names_file(space: Workspace) -> Path:
        names = space.scratch / "names.txt"
        names.write_text("\n".join(reference.branches) + "\n")
        return names

    def naive_loop(space: Workspace) -> list[str]:
        worktree, repo, names = space.scratch / "wt", space.repo, names_file(space)
        script = (
            f'while read -r b; do git -C "{repo}" worktree add -q "{worktree}" "$b" && '
            f'{{ git -C "{worktree}" merge -q --no-edit main >/dev/null 2>&1 || git -C "{worktree}" merge --abort; }}; '
            f'git -C "{repo}" worktree remove --force "{worktree}"; done < "{names}"'
        )
        return ["bash", "-c", script]

    def pairs_file(space: Workspace) -> Path:
        pairs = space.scratch / "pairs.txt"
        pairs.write_text("".join(f"{branch} {scenario.target(branch)}\n" for branch in reference.branches))
        return pairs

    graph = "" if scenario.write_commit_graph else 'git -C "{repo}" commit-graph write --reachable && '

    def floor(space: Workspace) -> list[str]:
        pairs = pairs_file(space)
        xargs = f'xargs -P {FLOOR_PARALLEL} -n 2 git -C "{space.repo}" merge-tree --write-tree'
        return ["bash", "-c", f'{graph.format(repo=space.repo)}{xargs} < "{pairs}" > /dev/null']

    def batch_floor(space: Workspace) -> list[str]:
        pairs = pairs_file(space)
        batch = f'git -C "{space.repo}" merge-tree --stdin'
        return ["bash", "-c", f'{graph.format(repo=space.repo)}{batch} < "{pairs}" > /dev/null']

    def results(space: Workspace) -> str:
        return verify_results(space.repo, space.reports, reference)

    def remote_pytest(space: Workspace) -> list[str]:
        return pytest_command(PLAN_WORKERS, "--remote", "origin")(
            Workspace(clone_of(space), space.reports, space.scratch)
        )

    def remote_orchestrator(space: Workspace) -> list[str]:
        return orchestrator_command(clone_of(space), space.reports, remote="origin")

    def worker_clones(space: Workspace) -> list[str]:
        """(g) spread over two workers that each align and push in a clone of their own."""
        config, workers = space.scratch / "alignment.yaml", space.scratch / "workers"
        config.write_text(json.dumps({"orchestration": scenario.orchestration}))
        workers.mkdir()
        return [
            *(sys.executable, "-m", "pytest", "-p", "plugins.alignment_plugin", "--pyargs", "alignment.test_branches"),
            *(f"--input={scenario.input_path}", f"--repo={clone_of(space)}", f"--config={config}", "-q"),
            *(f"--reports-dir={space.reports}", "-p", "no:cacheprovider", "--remote", "origin"),
            *(f"--worker-clones={space.scratch / 'clones'}", "--tx", f"{PLAN_WORKERS}*popen//chdir={workers}"),
            *("--dist", "load"),
        ]

    def remote_results(label: str) -> Callable[[Workspace], str]:
        def verify(space: Workspace) -> str:
            audit = space.reports / "latest" / "audit.jsonl"  # absent with ``audit_trail_enabled: false``
            for line in audit.read_text().splitlines() if audit.exists() else ():
                event = json.loads(line)
                if event["event"] == "push":
                    pushed = (event["seconds"], len(event["pushed"]))
                    PUBLISHING.setdefault((len(reference.branches), label), []).append(pushed)
            return verify_results(space.repo, space.reports, reference)

        return verify

    def remote_floor(space: Workspace) -> list[str]:
        clone, names = clone_of(space), names_file(space)
        refspecs = f'$(sed "s#.*#+refs/heads/&:refs/floor/&#" "{names}")'
        fetch = f'git -C "{clone}" fetch -q origin +refs/heads/main:refs/floor/main {refspecs}'
        merge = (
            f'b="$1"; old=$(git -C "{clone}" rev-parse "refs/floor/$b") && '
            f'tree=$(git -C "{clone}" merge-tree --write-tree "refs/floor/$b" refs/floor/main) && '
            f'new=$(git -C "{clone}" commit-tree "$tree" -p "$old" -p refs/floor/main -m merge) && '
            'echo "--force-with-lease=refs/heads/$b:$old $new:refs/heads/$b"'
        )
        pushes = space.scratch / "pushes.txt"
        script = (
            f'{fetch} && xargs -P {FLOOR_PARALLEL} -n 1 bash -c \'{merge}\' _ < "{names}" > "{pushes}"; '
            f'started=$(date +%s.%N); git -C "{clone}" push -q --porcelain origin $(cat "{pushes}") > /dev/null; '
            f'echo "$started $(date +%s.%N) $(wc -l < "{pushes}")" > "{space.scratch / "push-time.txt"}"'
        )
        return ["bash", "-c", script]

    def floor_pushed(space: Workspace) -> str:
        started, ended, count = (space.scratch / "push-time.txt").read_text().split()
        pushed = (float(ended) - float(started), int(count))
        PUBLISHING.setdefault((len(reference.branches), "(i) remote floor"), []).append(pushed)
        return verify_merges(space.repo, reference, reference.mergeable)

    def cost(space: Workspace) -> str:
        return explain_cost(space.reports)

    def pytest_alone(space: Workspace) -> list[str]:
        """(k) pytest and xdist with the same items and workers and nothing to do: what pytest itself costs.
        Without Hypothesis's plugin (the dev extras have it), which an alignment run unregisters
        (``IDLE_PLUGINS``): here it would import Hypothesis, 0.6 s a process."""
        names_file(space)
        (space.scratch / "conftest.py").write_text(NO_OP_CONFTEST)
        (space.scratch / "test_branches.py").write_text(NO_OP_TESTS)
        test_file = str(space.scratch / "test_branches.py")
        blocked = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
        return [sys.executable, "-m", "pytest", test_file, "-n", str(PLAN_WORKERS), "-q", *blocked]

    def all_passed(space: Workspace) -> str:
        outcome = (space.scratch / "outcome.txt").read_text().split()
        wanted = [str(len(reference.branches)), "0", "0"]  # passed, failed, exit status
        return "ok" if outcome == wanted else f"FAILED: passed, failed, exit status {outcome}, not {wanted}"

    found = [Approach(f"(a) pytest -n {n}", pytest_command(n), results, cost) for n in pytest_workers]
    found.append(Approach("(b) orchestrator", orchestrator, results))
    if naive:
        merged = reference.mergeable
        found.append(
            Approach("(c) naive loop", naive_loop, lambda s: verify_merges(s.repo, reference, merged), single_run=True)
        )
    found.append(Approach("(d) merge-tree floor", floor, lambda s: verify_floor(s.repo, reference)))
    found.append(Approach("(f) merge-tree --stdin floor", batch_floor, lambda s: verify_floor(s.repo, reference)))
    plan = pytest_command(PLAN_WORKERS, "--plan")
    found.append(
        Approach(
            f"(e) pytest -n {PLAN_WORKERS} --plan", plan, lambda s: verify_results(s.repo, s.reports, reference, True)
        )
    )
    remote_run = f"(g) pytest -n {PLAN_WORKERS} --remote"
    found.append(Approach(remote_run, remote_pytest, remote_results(remote_run)))
    found.append(Approach("(h) orchestrator, remote", remote_orchestrator, remote_results("(h) orchestrator, remote")))
    found.append(Approach("(i) remote floor", remote_floor, floor_pushed))
    if len(reference.branches) <= WORKER_CLONES_UP_TO:
        spread = f"(j) {PLAN_WORKERS} workers, own clones"
        found.append(Approach(spread, worker_clones, remote_results(spread)))
    found.append(Approach(f"(k) pytest -n {PLAN_WORKERS} alone", pytest_alone, all_passed))
    return [approach for approach in found if only is None or approach.name[1] in only]


NO_OP_TESTS = """import pathlib

import pytest


@pytest.mark.parametrize("branch", pathlib.Path(__file__).with_name("names.txt").read_text().split())
def test_branch(branch):
    pass
"""
NO_OP_CONFTEST = """import pathlib


def pytest_sessionfinish(session, exitstatus):
    if not hasattr(session.config, "workerinput"):  # the controller: what every worker reported
        stats = session.config.pluginmanager.get_plugin("terminalreporter").stats
        outcome = f"{len(stats.get('passed', []))} {len(stats.get('failed', []))} {int(exitstatus)}"
        pathlib.Path(__file__).with_name("outcome.txt").write_text(outcome)
"""
PUBLISHING: dict[tuple[int, str], list[tuple[float, int]]] = {}  # (branches, approach): (push seconds, refs)


def clone_of(space: Workspace) -> Path:
    """A clone of the run's copy (its remote ``origin``), made before the clock starts, with a commit-graph."""
    clone = space.scratch / "clone"
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(space.repo), str(clone)], check=True)
    for key, value in (("user.name", "Benchmark"), ("user.email", "bench@example.com")):
        git(clone, "config", key, value)
    git(clone, "commit-graph", "write", "--reachable")
    return clone


# --- running a case --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    branches: int
    files: int
    depth: int
    real_source: Path | None = None  # a real-history case: the source repository of bench.realhistory
    real_pin: str = realhistory.PIN  # and the commit of it whose history is used

    @property
    def label(self) -> str:
        if self.real_source is None:
            return f"{self.branches}b-{self.files}f"
        source = "" if self.real_pin == realhistory.PIN else f"{self.real_pin[:7]}-"  # pytest's: as before
        return f"real-{source}{self.branches}b"

    def scenario(self, work: Path) -> Scenario:
        """The case's repository: generated into ``work``, or the real-history workload (built once, cached)."""
        if self.real_source is not None:
            return realhistory.build(self.real_source, self.branches, self.real_pin)
        scenario = generate(work / f"gen-{self.label}", self.branches, files=self.files, depth=self.depth)
        git(scenario.repo, "commit-graph", "write", "--reachable")
        return scenario


@dataclass(frozen=True)
class Run:
    seconds: float
    verified: str
    peaks: Peaks | None
    code: str  # code_fingerprint() when the run started
    steal: float  # as in Execution
    detail: str = ""  # the approach's own figure (Approach.describe)


def code_fingerprint() -> str:
    """A short hash of the code under test (``alignment/``, ``plugins/``, ``conftest.py``) as it is now."""
    digest = hashlib.sha256()
    files = [PROJECT / "conftest.py", *(PROJECT / "alignment").rglob("*"), *(PROJECT / "plugins").rglob("*")]
    for path in sorted(files):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(f"{path.relative_to(PROJECT)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@dataclass
class Result:
    case: Case
    approach: str
    timed: list[Run] = field(default_factory=list)
    sampled: Run | None = None

    @property
    def median(self) -> float:
        """The median of the verified timed runs (of all timed runs if none was verified)."""
        verified = [run.seconds for run in self.timed if run.verified == "ok"]
        return statistics.median(verified or [run.seconds for run in self.timed])

    @property
    def runs(self) -> list[Run]:
        separate = self.sampled is not None and all(run is not self.sampled for run in self.timed)
        extra = [self.sampled] if separate and self.sampled is not None else []
        return [*self.timed, *extra]

    @property
    def verified(self) -> str:
        runs = self.runs
        failed = [run.verified for run in runs if run.verified != "ok"]
        if not failed:
            return f"ok ({len(runs)}/{len(runs)} runs)"
        return f"{failed[0]} ({len(failed)}/{len(runs)} runs failed)"


class CaseRunner:
    """Runs the approaches of one case, each on fresh copies of the same template repository."""

    def __init__(self, work: Path, case: Case, template: Path, keep: bool) -> None:
        self.work = work
        self.case = case
        self.template = template
        self.keep = keep
        self.count = 0

    def run(self, approach: Approach, sample_every: float | None, what: str) -> Run:
        self.count += 1
        base = self.work / f"{self.case.label}-run{self.count:02d}"
        space = Workspace(base / "repo.git", base / "reports", base / "scratch")
        shutil.copytree(self.template, space.repo, symlinks=True)
        space.scratch.mkdir()
        code = code_fingerprint()
        execution = execute(approach.command(space), sample_every)
        detail = ""
        try:
            verified = approach.verify(space)
            detail = approach.describe(space) if approach.describe is not None else ""
        except (OSError, KeyError, ValueError, subprocess.CalledProcessError) as error:
            verified = f"FAILED: {type(error).__name__}: {error}"
        if verified != "ok":
            log = base.with_suffix(".log")
            log.write_text(execution.output)
            tail = "\n    ".join(execution.output.splitlines()[-10:])
            progress(f"  {approach.name}: exit {execution.returncode}, {verified}; output in {log}:\n    {tail}")
        if not self.keep:
            shutil.rmtree(base, ignore_errors=True)
        peaks = execution.peaks
        memory = f", peak RSS {peaks.rss_mb:.0f} MB, PSS {peaks.pss_mb:.0f} MB" if peaks is not None else ""
        steal = f", {execution.steal:.0%} stolen" if execution.steal >= STEAL_WARNING else ""
        progress(f"  [{self.case.label}] {approach.name} {what}: {execution.seconds:.2f} s{memory}{steal}, {verified}")
        if detail:
            progress(f"    {detail}")
        return Run(execution.seconds, verified, peaks, code, execution.steal, detail)


def run_case(
    work: Path,
    case: Case,
    pytest_workers: list[int],
    repeat: int,
    naive: bool,
    keep: bool,
    only: str | None,
    settings: dict[str, object],
) -> tuple[list[Result], str]:
    """The results of every approach on ``case``, and the commit its ``main`` is at; ``settings`` are laid
    over the case's own configuration (``--settings``)."""
    scenario = case.scenario(work)
    scenario = replace(scenario, orchestration={**scenario.orchestration, **settings})
    scratch = work / f"{case.label}-reference.git"
    shutil.copytree(scenario.repo, scratch, symlinks=True)
    reference = Reference(scenario, tips(scenario.repo), *floor_trees(scratch, scenario))
    shutil.rmtree(scratch)
    runner = CaseRunner(work, case, scenario.repo, keep)
    chosen = approaches(reference, pytest_workers, naive, only)
    results = {approach.name: Result(case, approach.name) for approach in chosen}
    for round_number in range(1, repeat + 1):
        for approach in chosen:
            if approach.single_run and round_number > 1:
                continue
            interval = NAIVE_SAMPLE_EVERY if approach.single_run else None
            timed = runner.run(approach, interval, "single run" if approach.single_run else f"timed {round_number}")
            results[approach.name].timed.append(timed)
            if approach.single_run:
                results[approach.name].sampled = timed
    for approach in chosen:
        if not approach.single_run:
            results[approach.name].sampled = runner.run(approach, SAMPLE_EVERY, "sampled")
    return list(results.values()), reference.before["main"]


# --- the table -------------------------------------------------------------------------------------------

TIMES = "\N{MULTIPLICATION SIGN}"
HEADER = (
    f"| branches | files | approach | wall s (median) | {TIMES} floor | {TIMES} naive | peak RSS MB (sum) "
    "| peak PSS MB (sum) | verified |\n|---:|---:|---|---:|---:|---:|---:|---:|---|"
)


def rows(results: list[Result]) -> list[str]:
    lines = []
    for result in results:
        same_case = [r for r in results if r.case == result.case]
        remote = result.approach[:3] in ("(g)", "(h)", "(i)", "(j)")  # beside the remote floor
        floor = next((r.median for r in same_case if r.approach.startswith("(i)" if remote else "(d)")), None)
        naive = next((r.median for r in same_case if r.approach.startswith("(c)")), None)
        peaks = result.sampled.peaks if result.sampled is not None else None
        versus_floor = f"{result.median / floor:.2f}" if floor else "-"
        versus_naive = f"{result.median / naive:.3f}" if naive else "-"
        rss = f"{peaks.rss_mb:.0f}" if peaks is not None else "-"
        pss = f"{peaks.pss_mb:.0f}" if peaks is not None else "-"
        lines.append(
            f"| {result.case.branches} | {result.case.files:,} | {result.approach} | {result.median:.2f} | "
            f"{versus_floor} | {versus_naive} | {rss} | {pss} | {result.verified} |"
        )
    return lines


def describe_filesystem(path: Path, mounts: str, journals: Iterable[str], block_device: str | None = None) -> str:
    """The file system ``path`` is on, from ``/proc/mounts`` text and the names in ``/proc/fs/jbd2``, which
    names a journal by the kernel's name of its block device: ``block_device`` when known (the mount table may
    say ``/dev/root``), else the mount's device resolved. The notes name the file system because it moves the
    per-branch cost: measured on this project's VM, 1,000 branches took 6.0-7.6 s on an ext4 without a
    journal, where the inode allocator steps over every recently deleted inode (a run's files and the previous
    run's copy), against 3.9-4.8 s on an ext4 with one; the floor 1.1-1.4 s on both."""
    device, mountpoint, kind = "", "", "unknown"
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and path.is_relative_to(fields[1]) and len(fields[1]) >= len(mountpoint):
            device, mountpoint, kind = fields[:3]
    if kind != "ext4":
        return f"{kind} (`{mountpoint}`)"
    name = block_device or Path(device).resolve().name  # /dev/mapper/x is a link to /dev/dm-N, which jbd2 names
    journaled = any(entry.startswith(f"{name}-") for entry in journals)
    return f"ext4 {'with' if journaled else 'without'} a journal (`{mountpoint}`)"


def block_device_name(path: Path) -> str | None:
    """The kernel's name of the block device holding ``path`` (``vda1``, ``loop0``, ``dm-0``), from sysfs;
    None when it is on no block device (tmpfs, overlayfs) or sysfs is not there."""
    try:
        device = path.stat().st_dev
        return Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}").resolve(strict=True).name
    except OSError:
        return None


def filesystem_of(path: Path) -> str:
    jbd2 = Path("/proc/fs/jbd2")
    journals = [entry.name for entry in jbd2.iterdir()] if jbd2.is_dir() else []
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    return describe_filesystem(path.resolve(), mounts, journals, block_device_name(path))


def notes(results: list[Result], arguments: argparse.Namespace, tips_of_main: dict[str, str], work: Path) -> list[str]:
    commit = subprocess.run(
        ["git", "-C", str(PROJECT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    lines = [
        "",
        f"- Wall s: median of {arguments.repeat} unsampled runs, each on a fresh copy of the unaligned repository "
        "(copy not timed); the naive loop: one run, sampled every "
        f"{NAIVE_SAMPLE_EVERY * 1000:.0f} ms.",
        f"- {TIMES} floor, {TIMES} naive: this row's wall time divided by the floor's / the naive loop's "
        "(below 1 is faster); the remote rows (g) to (j) are divided by the remote floor (i).",
        f"- Peak RSS / PSS: largest sum over the process tree, from one extra run sampled every "
        f"{SAMPLE_EVERY * 1000:.0f} ms (the naive loop: its single run). RSS counts shared pages once per process, "
        "PSS splits them.",
        "- Verified: runs of the row whose outcome was checked against the generator's intent and `git merge-tree`.",
        "- The harness was byte-compiled before the runs (`compileall`), and the runs may save bytecode "
        "(`PYTHONDONTWRITEBYTECODE` unset), as a user's Python does after the first run.",
    ]
    if arguments.settings:
        lines.append(
            f"- Configuration laid over every case's (`--settings`): `{json.dumps(arguments.settings)}`; the "
            "floors, the naive loop and pytest alone do not read it."
        )
    if any(r.case.branches > arguments.naive_up_to for r in results):
        lines.append(f"- The naive loop was skipped above {arguments.naive_up_to} branches (`--naive-up-to`).")
    for result in results:
        sampled = result.sampled
        if result.approach.startswith("(c)") and sampled is not None and sampled.peaks is not None:
            share = sampled.peaks.sampler_cpu_seconds / sampled.seconds
            lines.append(
                f"- Naive loop, {result.case.label}: the sampler took {sampled.peaks.samples} samples "
                f"and {share:.1%} of one core."
            )
    lines.append(
        "- Repositories: `bench.generate` (seed 7, fixed dates), 2,000 files and 1,000 target commits, or "
        "30,000 files and 200; main at "
        + ", ".join(f"{label} `{tip[:12]}`" for label, tip in tips_of_main.items())
        + "."
    )
    lines.append(
        f"- Machine: {os.cpu_count()} cores, Python {platform.python_version()}, {git_version}; project at `{commit}`;"
        f" repositories and reports on {filesystem_of(work)}."
    )
    versions = sorted({run.code for result in results for run in result.runs})
    if len(versions) == 1:
        lines.append(
            f"- Code under test (`alignment/`, `plugins/`, `conftest.py`): sha256 `{versions[0]}` in every run."
        )
    else:
        changed = [f"{r.case.label} {r.approach}" for r in results if len({run.code for run in r.runs}) > 1]
        lines.append(
            f"- WARNING: the code under test changed during the benchmark ({len(versions)} versions: "
            f"{', '.join(versions)}); rows that ran more than one: {', '.join(changed) or 'none'}."
        )
    stolen = [
        f"{r.case.label} {r.approach} ({max(run.steal for run in r.timed):.0%})"
        for r in results
        if max(run.steal for run in r.timed) >= STEAL_WARNING
    ]
    worst = max(run.steal for r in results for run in r.timed)
    lines.append(
        f"- CPU steal (time the hypervisor gave to other VMs) during timed runs: at most {worst:.1%}"
        + (f"; {STEAL_WARNING:.0%} or more in: {', '.join(stolen)}." if stolen else ".")
    )
    for (branches, approach), pushes in sorted(PUBLISHING.items()):
        per_branch = statistics.median(seconds / count for seconds, count in pushes if count) * 1000
        seconds = statistics.median(seconds for seconds, _ in pushes)
        count = pushes[0][1]
        lines.append(
            f"- Push cost, {branches} branches, {approach}: publishing {seconds:.2f} s for {count} pushed branches "
            f"(median of {len(pushes)} runs), {per_branch:.2f} ms per branch."
        )
    lines.append("")
    lines.append("Timed runs (s):")
    lines.extend(
        f"- {r.case.label} {r.approach}: " + ", ".join(f"{run.seconds:.2f}" for run in r.timed) for r in results
    )
    return lines


# --- command line ----------------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


APPROACHES_SET = ("max_workers_per_target", "remote", "repo_path", "reports_dir")  # e.g. (b), (h), --repo


def settings_overlay(text: str) -> dict[str, object]:
    """``--settings``: configuration keys as a JSON object, checked as a configuration file's
    ``orchestration`` mapping is (a key unknown or a value wrong is a usage error, before any case runs).
    The keys an approach sets itself are refused: they would not reach every run."""
    try:
        overlay = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(overlay, dict):
        raise argparse.ArgumentTypeError('expected a JSON object of configuration keys, e.g. {"log_per_branch": false}')
    try:
        from_mapping({"orchestration": overlay}, "--settings")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    for key in APPROACHES_SET:
        if key in overlay:
            raise argparse.ArgumentTypeError(f"--settings: orchestration.{key}: set by the approaches themselves")
    return overlay


def int_list(text: str) -> list[int]:
    """``"50,200,1000"`` as ``[50, 200, 1000]``; ``""`` as ``[]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def compile_harness() -> None:
    """Byte-compile the harness before any run: each process a run starts imports it, and with
    ``PYTHONDONTWRITEBYTECODE`` set (as on this machine, and in some CI images) Python never saves what it
    compiled, so each process would compile every module changed since the last save again (all of them:
    about 0.12 s a process here). Users' runs import saved bytecode once Python has written it. The modules
    pytest rewrites (the plugin, the collected module) it saves itself, on the first run: ``run_environment``
    lets it."""
    for package in ("alignment", "plugins"):
        compileall.compile_dir(PROJECT / package, quiet=1)


def run_environment() -> dict[str, str]:
    """The environment of every timed command: this one, except that Python may save bytecode."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def main() -> None:
    parser = argparse.ArgumentParser(description="branch alignment benchmark")
    parser.add_argument("--sizes", type=int_list, default=[50, 200, 1000], help="branch counts, e.g. 50,200,1000")
    parser.add_argument("--big", type=int, default=50, help="branches in the 30,000-file repository (0: skip)")
    parser.add_argument("--real", type=int, default=400, help="branches of the real-history case (0: skip)")
    parser.add_argument(
        "--real-source", type=Path, help="a clone of the real-history case's source (bench.realhistory): pytest's"
    )
    parser.add_argument(
        "--real-pin", default=realhistory.PIN, help="the source's commit whose history is used (default: pytest's)"
    )
    parser.add_argument("--pytest-workers", type=int_list, default=[2], help="pytest -n values, e.g. 2,4")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per approach (median reported)")
    parser.add_argument("--naive-up-to", type=int, default=1000, help="skip the naive loop above this size")
    parser.add_argument("--only", help="letters of the approaches to run, e.g. adghi (default: all)")
    parser.add_argument("--output", type=Path, help="also write the Markdown table here")
    parser.add_argument("--keep", type=Path, help="keep the generated repositories and run copies here")
    parser.add_argument(
        "--settings",
        type=settings_overlay,
        default={},
        help="configuration keys (JSON) laid over every case's, e.g. '{\"explain_budget_merges\": 0}': "
        "what a run costs without one of its features",
    )
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    compile_harness()
    work = arguments.keep or Path(tempfile.mkdtemp(prefix="alignment-bench-"))
    cases = [Case(size, 2000, 1000) for size in arguments.sizes]
    if arguments.big:
        cases.append(Case(arguments.big, 30000, 200))
    if arguments.real and arguments.real_source:
        cases.append(Case(arguments.real, 0, 0, arguments.real_source, arguments.real_pin))
    started = time.perf_counter()
    results: list[Result] = []
    tips_of_main: dict[str, str] = {}
    table = HEADER
    try:
        for case in cases:
            progress(f"[{case.label}] generating and running")
            naive = case.branches <= arguments.naive_up_to
            keep = arguments.keep is not None
            found, tips_of_main[case.label] = run_case(
                work, case, arguments.pytest_workers, arguments.repeat, naive, keep, arguments.only, arguments.settings
            )
            results.extend(found)
            table = "\n".join([HEADER, *rows(results), *notes(results, arguments, tips_of_main, work)])
            if arguments.output:
                arguments.output.write_text(table + "\n")
        print(table)
        progress(f"total {time.perf_counter() - started:.0f} s")
    finally:
        if arguments.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
