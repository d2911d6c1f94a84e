"""Generate benchmark repositories: chosen size, history depth and share of conflicting / breaking branches.

The repository is written with ``git fast-import`` (fixed dates, so it is the same every time for the same
arguments). Its ``categorized_branches.json`` gives every branch an extra ``bench_expected`` field: the
status a correct run must report, which the benchmark checks after every run.

Layout: a base commit with ``files`` files in nested folders, then ``depth`` target commits that each change
a few "churn" files (deep history), the last of which also changes ``hot/`` and ``syntax/`` files. Branches
fork from the second half of that history; a *conflicting* branch edits the same line of its ``hot/`` file,
a *breaking* branch turns its ``syntax/`` file into a list that the target's new function lands inside.
A few branches are already up to date (forked from the tip) or only behind (no commits of their own).
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from alignment.demo import History
from alignment.git import Git

SYNTAX = "START = None\n'a',\n'b',\n'c',\n'd',\n'e',\nEND = None\n"
SYNTAX_TARGET = SYNTAX.replace("'c',\n", "'c',\ndef helper():\n    return 0\n")
SYNTAX_BRANCH = SYNTAX.replace("START = None", "START = [").replace("END = None", "]")


@dataclass(frozen=True)
class Scenario:
    repo: Path
    input_path: Path
    expected: dict[str, str]
    targets: dict[str, str] = field(default_factory=dict)  # branch -> its target, where not ``main``
    write_commit_graph: bool = True  # the benchmark writes one into the template (False: each run pays it)
    orchestration: dict[str, object] = field(default_factory=dict)  # configuration the runs need

    def target(self, branch: str) -> str:
        return self.targets.get(branch, "main")


def _file_name(index: int) -> str:
    return f"src/pkg{index // 100:03d}/module{index % 100:02d}.py"


def generate(
    directory: Path,
    branches: int,
    files: int = 2000,
    depth: int = 1000,
    conflict_share: float = 0.1,
    syntax_share: float = 0.05,
    seed: int = 7,
) -> Scenario:
    """Write ``directory/repo.git`` and ``directory/categorized_branches.json``."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    history = History()
    kinds = _kinds(branches, conflict_share, syntax_share, rng)
    base_files: dict[str, str | bytes | None] = {_file_name(i): f"VALUE_{i} = {i}\n" for i in range(files)}
    base_files.update({f"hot/{i}.txt": "shared line\n" for i, kind in enumerate(kinds) if kind == "conflict"})
    base_files.update({f"syntax/s{i}.py": SYNTAX for i, kind in enumerate(kinds) if kind == "syntax"})
    marks = [history.commit("main", "base", base_files)]
    for step in range(1, depth):
        churn = {_file_name(rng.randrange(files)): f"VALUE = {step}\n" for _ in range(3)}
        last = step == depth - 1
        if last:
            churn.update({f"hot/{i}.txt": "target line\n" for i, kind in enumerate(kinds) if kind == "conflict"})
            churn.update({f"syntax/s{i}.py": SYNTAX_TARGET for i, kind in enumerate(kinds) if kind == "syntax"})
        marks.append(history.commit("main", f"target commit {step}", churn, [marks[-1]]))
    expected = {}
    entries = []
    for index, kind in enumerate(kinds):
        name = f"topic/{kind}-{index:04d}"
        fork = marks[rng.randrange(depth // 2, depth - 1)]
        if kind == "behind":
            history.branch(name, fork)
        elif kind == "up_to_date":
            history.commit(name, "own work", {f"own/{index}.txt": "mine\n"}, [marks[-1]])
        else:
            own: dict[str, str | bytes | None] = {f"own/{index}.txt": "mine\n"}
            if kind == "conflict":
                own[f"hot/{index}.txt"] = "branch line\n"
            if kind == "syntax":
                own[f"syntax/s{index}.py"] = SYNTAX_BRANCH
            history.commit(name, "own work", own, [fork])
        expected[name] = {"conflict": "failed_integration", "syntax": "failed_error_detection"}.get(kind, "completed")
        entries.append({"branch_name": name, "assigned_target": "main", "confidence": 0.9, "tags": [],
                        "cluster_id": index % 5, "bench_expected": expected[name]})  # fmt: skip
    repo = directory / "repo.git"
    git = Git.init_bare(repo)
    try:
        git.set_identity("Benchmark", "bench@example.com")
        git.fast_import(history.stream())
    finally:
        git.close()
    input_path = directory / "categorized_branches.json"
    input_path.write_text(json.dumps({"branches": entries}), encoding="utf-8")
    return Scenario(repo, input_path, expected)


def _kinds(branches: int, conflict_share: float, syntax_share: float, rng: random.Random) -> list[str]:
    conflicts = round(branches * conflict_share)
    syntax = round(branches * syntax_share)
    special = max(1, branches // 50) if branches >= 10 else 0
    kinds = ["conflict"] * conflicts + ["syntax"] * syntax + ["up_to_date"] * special + ["behind"] * special
    kinds += ["clean"] * (branches - len(kinds))
    rng.shuffle(kinds)
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--conflict-share", type=float, default=0.1)
    parser.add_argument("--syntax-share", type=float, default=0.05)
    arguments = parser.parse_args()
    scenario = generate(arguments.directory, arguments.branches, arguments.files, arguments.depth,
                        arguments.conflict_share, arguments.syntax_share)  # fmt: skip
    print(f"{scenario.repo}\n{scenario.input_path}")


if __name__ == "__main__":
    main()
