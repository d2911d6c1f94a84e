"""A local bare repository as the remote, and a fresh clone of it: the setting of ``--remote`` tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignment.orchestrator import BranchAlignmentOrchestrator, Progress
from tests.conftest import Repo, entry, write_input

NAMES = ("feature-a", "feature-b", "feature-c")


@dataclass
class Origin:
    """A bare repository as the remote, and a fresh clone of it where the branches exist only as origin/*."""

    bare: Repo
    clone: Repo
    olds: dict[str, str]
    target: str
    tmp: Path

    def run(self, names: tuple[str, ...] = NAMES, **config: Any) -> dict[str, dict[str, Any]]:
        progress: Progress | None = config.pop("progress", None)
        plan = config.pop("plan", False)
        write_input(self.tmp / "in.json", [entry(name) for name in names])
        orchestrator = BranchAlignmentOrchestrator(
            {"orchestration": {"remote": "origin", **config}}, reports_dir=self.tmp / "reports", progress=progress
        )
        execute = orchestrator.plan if plan else orchestrator.run
        data = execute(self.tmp / "in.json", self.clone.path)
        self.run_id = str(data["run_id"])
        return {b["branch_name"]: b for group in data["orchestration_results"].values() for b in group["branches"]}

    def remote_tip(self, name: str) -> str | None:
        return self.bare.git("for-each-ref", "--format=%(objectname)", f"refs/heads/{name}") or None

    def assert_safe(self) -> None:
        """Every branch at its old tip or at the checked merge of it with the target; every backup at the old tip."""
        for name, old in self.olds.items():
            tip = self.remote_tip(name)
            if tip != old:
                assert self.bare.git("rev-parse", f"{tip}^1", f"{tip}^2").split() == [old, self.target]
                merged = self.bare.git("merge-tree", "--write-tree", old, self.target)
                assert self.bare.git("rev-parse", f"{tip}^{{tree}}") == merged
            backup = self.remote_tip(f"backup-{name}-pre-align")
            assert backup in (None, old)

    def assert_aligned(self, name: str) -> None:
        self.bare.git("merge-base", "--is-ancestor", self.target, name)
        self.bare.git("merge-base", "--is-ancestor", self.olds[name], name)


def make_origin(repo: Repo, tmp_path: Path) -> Origin:
    """Branches ``NAMES`` forked from ``main``, which then moved on; pushed to a bare remote, then cloned."""
    base = repo.tip("main")
    olds = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=base) for name in NAMES}
    target = repo.commit("main", {"m.txt": "m\n"})
    bare = tmp_path / "remote.git"
    object_format = repo.git("rev-parse", "--show-object-format")
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", f"--object-format={object_format}", str(bare)], check=True
    )
    repo.git("push", "-q", str(bare), "refs/heads/*:refs/heads/*")
    subprocess.run(["git", "clone", "-q", str(bare), str(tmp_path / "clone")], check=True)
    return Origin(Repo(bare), Repo(tmp_path / "clone"), olds, target, tmp_path)


def hook(origin: Origin, script: str) -> Path:
    path = origin.bare.path / "hooks" / "update"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def hold_branch_pushes(origin: Origin) -> tuple[Path, Path]:
    """A server hook that holds every ``feature-*`` branch's push while the file ``block`` exists, after
    touching ``reached``: the moment between a run's backup push and its branch push, for a kill."""
    block, reached = origin.tmp / "block", origin.tmp / "reached"
    block.touch()
    hook(
        origin,
        f'case "$1" in refs/heads/feature-*) touch "{reached}"; while [ -e "{block}" ]; do sleep 0.1; done;; esac\n',
    )
    return block, reached
