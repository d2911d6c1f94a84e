"""Faults with real processes: the controller killed mid-run; then the next run, with no manual cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Repo, entry, write_input

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def children(pid: int) -> list[int]:
    found = []
    for entry_path in Path("/proc").iterdir():
        if entry_path.name.isdigit():
            try:
                stat = (entry_path / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry_path.name))
    return found


def wait_until(condition: object, seconds: float = 60) -> None:
    ends = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < ends, "timed out waiting"
        time.sleep(0.05)


def alignment_run(repo: Repo, tmp_path: Path, config: dict[str, object]) -> list[str]:
    config_path = tmp_path / "alignment.yaml"
    config_path.write_text(json.dumps({"orchestration": config}))
    return [
        sys.executable,
        "-m",
        "pytest",
        str(PROJECT / "alignment"),
        "-n",
        "2",
        "-q",
        "-p",
        "no:cacheprovider",
        "--input",
        str(tmp_path / "in.json"),
        "--repo",
        str(repo.path),
        "--config",
        str(config_path),
        "--reports-dir",
        str(tmp_path / "reports"),
    ]


def test_killing_the_controller_loses_nothing_and_the_next_run_cleans_up(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = repo.tip("main")
    olds = {f"topic-{i}": repo.commit(f"topic-{i}", {f"t{i}.txt": "x\n"}, parent=base) for i in range(12)}
    target = repo.commit("main", {"m.txt": "m\n"})
    write_input(tmp_path / "in.json", [entry(name) for name in olds])
    monkeypatch.setenv("ALIGNMENT_TEST_SLEEP", ":0.4")
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))
    slow = {"integration_utility": "tests.plugin.components:SlowIntegrator", "check_commands": [["true"]]}
    controller = subprocess.Popen(
        alignment_run(repo, tmp_path, slow), cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    audit = tmp_path / "reports"

    def some_branches_done() -> bool:
        ends = [
            line
            for path in audit.glob("runs/*/audit.jsonl")
            for line in path.read_text().splitlines()
            if '"branch_end"' in line
        ]
        return len(ends) >= 3

    wait_until(some_branches_done)
    workers = children(controller.pid)
    os.kill(controller.pid, signal.SIGKILL)
    controller.wait()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers))
    (first_run,) = [path.name for path in (audit / "runs").iterdir()]

    moved = 0
    for name, old in olds.items():
        tip, backup = repo.tip(name), f"backup-{name}-pre-align"
        if tip != old:
            moved += 1
            assert repo.exists(backup), f"'{name}' moved without a backup"
            assert repo.tip(backup) == old
            assert repo.git("rev-parse", f"{tip}^1", f"{tip}^2").split() == [old, target]
            assert repo.git("rev-parse", f"{tip}^{{tree}}") == repo.git("merge-tree", "--write-tree", old, target)
        elif repo.exists(backup):  # started, not moved yet when the controller died
            assert repo.tip(backup) == old
    assert moved >= 3
    assert not list((repo.path / ".git" / "refs").rglob("*.lock"))

    second = subprocess.run(
        alignment_run(repo, tmp_path, {"check_commands": [["true"]]}),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert second.returncode == 0, second.stdout[-2000:]
    assert f"run {first_run} did not finish" in second.stdout
    assert len(repo.git("worktree", "list").splitlines()) == 1
    assert not list((repo.path / ".git").glob("worktrees/*"))
    for name, old in olds.items():
        assert repo.git("merge-base", "--is-ancestor", target, name) == ""
        assert repo.git("merge-base", "--is-ancestor", old, name) == ""
