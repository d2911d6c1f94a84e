"""``pytest alignment/ --shard K/N``: shards run by pytest (with and without xdist) and by the orchestrator
merge to what one unsharded run gives; bad values are one ``ERROR:`` line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from alignment.cli import main as cli
from alignment.demo import build_demo
from alignment.inputs import load_branches
from alignment.orchestrator import BranchAlignmentOrchestrator
from alignment.shard import ShardSpec
from tests.conftest import entry, write_input
from tests.git.test_shards import CLASHING, clashing_repo, outcomes
from tests.plugin.test_plugin import ALIGNMENT_DIR, normalized

pytestmark = pytest.mark.slow


def aligned(pytester: pytest.Pytester, reports: Path, *args: str) -> dict[str, Any]:
    """Run ``pytest alignment/ ARGS`` (in a subprocess with ``-n``); the results it wrote."""
    argv = [str(ALIGNMENT_DIR), "-p", "no:cacheprovider", "--reports-dir", str(reports), *args]
    result = pytester.runpytest_subprocess(*argv, timeout=300) if "-n" in args else pytester.runpytest_inprocess(*argv)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.outlines[-5:]
    loaded: dict[str, Any] = json.loads((reports / "alignment_results.json").read_text(encoding="utf-8"))
    return loaded


def test_two_shards_by_both_front_ends_merge_to_the_unsharded_run(pytester: pytest.Pytester, tmp_path: Path) -> None:
    whole_repo, whole_input = build_demo(tmp_path / "whole")
    whole = aligned(pytester, tmp_path / "whole-reports", "--input", str(whole_input), "--repo", str(whole_repo))
    repo, input_path = build_demo(tmp_path / "sharded")
    first = aligned(
        pytester, tmp_path / "first", "--input", str(input_path), "--repo", str(repo), "--shard", "1/2", "-n", "2"
    )
    second = aligned(pytester, tmp_path / "second", "--input", str(input_path), "--repo", str(repo), "--shard", "2/2")
    assert first["shard"]["pieces"] != second["shard"]["pieces"]

    other_repo, other_input = build_demo(tmp_path / "other")
    by_class = BranchAlignmentOrchestrator(reports_dir=tmp_path / "class", shard="2/2").run(other_input, other_repo)
    assert normalized(by_class) == normalized(second)  # both doors pick the same branches and give the same output
    assert by_class["shard"] == second["shard"]

    files = [str(tmp_path / name / "alignment_results.json") for name in ("second", "first")]
    assert cli(["merge-results", *files, "-o", str(tmp_path / "merged")]) == 0
    merged = json.loads((tmp_path / "merged" / "alignment_results.json").read_text(encoding="utf-8"))
    assert normalized(merged) == normalized(whole)
    assert [run["run_id"] for run in merged["shards"]["runs"]] == [first["run_id"], second["run_id"]]


def test_xdist_workers_of_a_shard_keep_clear_of_the_other_shards_backup_names(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """The whole input's branch names reach each worker with the run's setup: ``x`` of shard 1 passes over
    ``backup-x-pre-align``, a branch of shard 2, and ``a`` over the folder of ``a-pre-align/b``'s backup."""
    repo = clashing_repo(tmp_path / "repo")
    input_path = write_input(tmp_path / "in.json", [entry(*item) for item in CLASHING])
    first = aligned(pytester, tmp_path / "first", "--input", str(input_path), "--repo", str(repo.path), "--shard",
                    "1/2", "-n", "2")  # fmt: skip
    assert outcomes(first) == {"a": ("completed", "backup-a-pre-align-2"), "x": ("completed", "backup-x-pre-align-2")}


def test_the_shard_is_in_the_header_and_the_ini_twin_works(pytester: pytest.Pytester, tmp_path: Path) -> None:
    repo, input_path = build_demo(tmp_path / "demo")
    argv = ["-p", "no:cacheprovider", "--reports-dir", str(tmp_path / "reports"), "-o", "alignment_shard=3/3"]
    result = pytester.runpytest_inprocess(str(ALIGNMENT_DIR), "--input", str(input_path), "--repo", str(repo), *argv)
    data = json.loads((tmp_path / "reports" / "alignment_results.json").read_text(encoding="utf-8"))
    branches = [branch for group in data["orchestration_results"].values() for branch in group["branches"]]
    expected = load_branches(input_path, ShardSpec(3, 3)).branches
    assert [branch["branch_name"] for branch in branches] == [spec.name for spec in expected]
    assert f"alignment shard 3/3: {len(expected)} of 20 branches" in result.outlines
    completed = sum(branch["status"] == "completed" for branch in branches)
    result.assert_outcomes(passed=completed, failed=len(expected) - completed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "0/4"], "--shard '0/4': expected K/N, shard K of N with 1 <= K <= N <= 1000 (e.g. 2/4)"),
        (["--shard", "5/4"], "--shard '5/4': expected K/N"),
        (["--shard", "x"], "--shard 'x': expected K/N"),
        (["-o", "alignment_shard=2/0"], "alignment_shard '2/0': expected K/N"),
    ],
)
def test_bad_shard_values_are_one_error_line(
    pytester: pytest.Pytester, tmp_path: Path, args: list[str], message: str
) -> None:
    input_path = tmp_path / "in.json"
    input_path.write_text('{"branches": []}', encoding="utf-8")
    reports = tmp_path / "reports"
    result = pytester.runpytest_inprocess(
        str(ALIGNMENT_DIR), "--input", str(input_path), "--repo", str(tmp_path), "--reports-dir", str(reports), *args
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR")]
    assert len(errors) == 1
    assert message in errors[0]
    assert not reports.exists()


def test_a_shard_without_branches_passes(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """More shards than branches: the last shard has nothing to do, and its CI job must not fail for it."""
    repo, input_path = build_demo(tmp_path / "demo")
    reports = tmp_path / "reports"
    result = pytester.runpytest_inprocess(
        str(ALIGNMENT_DIR), "--input", str(input_path), "--repo", str(repo), "--reports-dir", str(reports),
        "-p", "no:cacheprovider", "--shard", "21/21",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    data = json.loads((reports / "alignment_results.json").read_text(encoding="utf-8"))
    assert (data["orchestration_results"], data["shard"]["pieces"]) == ({}, [])
