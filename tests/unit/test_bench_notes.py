"""The benchmark's notes name the file system its repositories are on: it moves the per-branch cost. And the
benchmark times the harness as users run it: byte-compiled, with the configuration it was asked for."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bench.run
from bench.run import block_device_name, compile_harness, describe_filesystem, execute, settings_overlay

MOUNTS = """/dev/vda / ext4 rw,relatime 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
/dev/loop0 /mnt/j ext4 rw,relatime 0 0
/dev/loop1 /mnt/j/inner xfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "journals", "described"),
    [
        ("/tmp/bench", [], "ext4 without a journal (`/`)"),
        ("/tmp/bench", ["vda-8"], "ext4 with a journal (`/`)"),
        ("/mnt/j/bench", ["loop0-8"], "ext4 with a journal (`/mnt/j`)"),
        ("/mnt/j/bench", ["vda-8"], "ext4 without a journal (`/mnt/j`)"),
        ("/mnt/j/inner/x", ["loop0-8"], "xfs (`/mnt/j/inner`)"),
        ("/dev/shm/x", [], "tmpfs (`/dev/shm`)"),
        ("/mnt/jj", ["loop0-8"], "ext4 without a journal (`/`)"),
    ],
)
def test_the_deepest_mount_holding_the_path_is_named_with_its_journal(
    path: str, journals: list[str], described: str
) -> None:
    assert describe_filesystem(Path(path), MOUNTS, journals) == described


@pytest.mark.parametrize(("block_device", "described"), [("vda1", "with"), (None, "without")])
def test_a_journal_is_found_by_the_block_device_when_the_mount_table_says_dev_root(
    block_device: str | None, described: str
) -> None:
    """Some kernels list the root file system as ``/dev/root``; jbd2 names its journal by the real device."""
    mounts = "/dev/root / ext4 rw,relatime 0 0\n"
    assert (
        describe_filesystem(Path("/tmp/bench"), mounts, ["vda1-8"], block_device) == f"ext4 {described} a journal (`/`)"
    )


def test_the_block_device_of_a_path_is_the_one_sysfs_names_for_its_device_number(tmp_path: Path) -> None:
    device = tmp_path.stat().st_dev
    sysfs = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    assert block_device_name(tmp_path) == (sysfs.resolve().name if sysfs.exists() else None)
    assert block_device_name(tmp_path / "missing") is None


def test_the_harness_is_byte_compiled_before_the_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # as on the benchmark's machine: imports save nothing
    monkeypatch.setattr(bench.run, "PROJECT", tmp_path)
    sources = [tmp_path / "alignment" / "steps.py", tmp_path / "plugins" / "front.py"]
    for source in sources:
        source.parent.mkdir()
        source.write_text("VALUE = 1\n")
    compile_harness()
    assert all(Path(importlib.util.cache_from_source(str(source))).is_file() for source in sources)


def test_the_timed_commands_may_save_bytecode_as_users_runs_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    done = execute([sys.executable, "-c", "import sys; print(sys.flags.dont_write_bytecode)"], None)
    assert (done.returncode, done.output.strip()) == (0, "0")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"explain_budget_merge": 0}', "orchestration.explain_budget_merge: unknown key"),
        ('{"explain_budget_merges": -1}', "expected an integer >= 0, got -1"),
        ('["log_per_branch"]', "expected a JSON object of configuration keys"),
        ("{log_per_branch: false}", "not JSON"),
        ('{"max_workers_per_target": 1}', "orchestration.max_workers_per_target: set by the approaches themselves"),
        ('{"remote": "origin"}', "orchestration.remote: set by the approaches themselves"),
        ('{"reports_dir": "elsewhere"}', "orchestration.reports_dir: set by the approaches themselves"),
    ],
)
def test_settings_that_a_configuration_file_could_not_hold_are_refused(text: str, problem: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(problem)):
        settings_overlay(text)


@pytest.mark.slow
def test_the_settings_reach_every_run_and_the_notes(tmp_path: Path) -> None:
    """A small case with per-branch logs and the audit trail switched off: neither the pytest runs nor the
    orchestrator's (local or with a remote) write them, and the notes say what was laid over the case's
    configuration."""
    keep, settings = tmp_path / "keep", '{"log_per_branch": false, "audit_trail_enabled": false}'
    arguments = ["--sizes", "4", "--big", "0", "--real", "0", "--repeat", "1", "--naive-up-to", "0", "--only", "abh"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *arguments, "--keep", str(keep), "--settings", settings],
        cwd=Path(bench.run.__file__).parents[1], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"(`--settings`): `{settings}`" in done.stdout
    assert "FAILED" not in done.stdout  # every run verified, the one with a remote without its audit trail too
    runs = sorted(keep.glob("4b-*-run*/reports/runs/*"))
    assert len(runs) == 6  # (a), (b) and (h), each timed once and sampled once
    assert all((run / "alignment_results.json").is_file() for run in runs)
    assert not [path for run in runs for path in (run / "logs", run / "audit.jsonl") if path.exists()]
