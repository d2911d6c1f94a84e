"""Sharded runs and ``alignment merge-results``: shards merged equal one unsharded run; refusals are one line."""

from __future__ import annotations

import json
import subprocess
import sys
from html import escape
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from alignment.cli import main as cli
from alignment.errors import UsageProblem
from alignment.merge import merge_results
from alignment.orchestrator import BranchAlignmentOrchestrator
from tests.conftest import Repo, entry, load_schema, settings, write_input
from tests.plugin.test_plugin import normalized

# main: five clean branches and two that conflict; dev: three clean branches; listed interleaved.
INPUT = [
    ("ok-0", "main"),
    ("dev-0", "dev"),
    ("bad-0", "main"),
    ("ok-1", "main"),
    ("dev-1", "dev"),
    ("ok-2", "main"),
    ("bad-1", "main"),
    ("ok-3", "main"),
    ("dev-2", "dev"),
    ("ok-4", "main"),
]


def make_repo(path: Path) -> Repo:
    """The branches of ``INPUT`` in a new repository (fixed dates: two calls give the same commits)."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    repo = Repo(path)
    base = repo.commit("main", {"app.py": "def main():\n    return 1\n"}, "initial")
    repo.branch("dev", base)
    repo.commit("dev", {"dev.txt": "d\n"})
    for name, _ in INPUT:
        content = {"app.py": f"mine {name}\n"} if name.startswith("bad") else {f"{name}.txt": "x\n"}
        repo.commit(name, content, parent=base)
    repo.commit("main", {"app.py": "theirs\n"})
    return repo


def shard_files(tmp_path: Path, count: int, *, config: Any = None, entries: Any = None) -> list[Path]:
    """Run every shard of ``count`` with the orchestrator on one fresh repository; their results files."""
    repo = make_repo(tmp_path / f"repo-{count}")
    input_path = write_input(tmp_path / f"in-{count}.json", entries or [entry(*item) for item in INPUT])
    paths = []
    for index in range(1, count + 1):
        reports = tmp_path / f"shard-{index}-of-{count}"
        BranchAlignmentOrchestrator(config, reports_dir=reports, shard=f"{index}/{count}").run(input_path, repo.path)
        paths.append(reports / "alignment_results.json")
    return paths


def read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(data, load_schema())
    return data


def test_shards_merged_equal_the_unsharded_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole_repo = make_repo(tmp_path / "whole")
    whole = BranchAlignmentOrchestrator(reports_dir=tmp_path / "whole-reports").run(
        write_input(tmp_path / "in.json", [entry(*item) for item in INPUT]), whole_repo.path
    )
    paths = shard_files(tmp_path, 3)
    shards = [read(path)["shard"] for path in paths]
    assert [(shard["index"], shard["count"]) for shard in shards] == [(1, 3), (2, 3), (3, 3)]
    assert [[piece["target"] for piece in shard["pieces"]] for shard in shards] == [["main"], ["main"], ["dev"]]

    assert cli(["merge-results", *map(str, reversed(paths)), "-o", str(tmp_path / "merged")]) == 0
    merged = read(tmp_path / "merged" / "alignment_results.json")
    assert normalized(merged) == normalized(whole)
    assert [branch["branch_name"] for branch in merged["orchestration_results"]["main"]["branches"]] == [
        "ok-0",
        "bad-0",
        "ok-1",
        "ok-2",
        "bad-1",
        "ok-3",
        "ok-4",
    ]
    runs = merged["shards"]["runs"]
    assert [run["run_id"] for run in runs] == [read(path)["run_id"] for path in paths]
    assert merged["shards"]["missing"] == []
    assert merged["overall_summary"]["started_at"] == min(read(path)["overall_summary"]["started_at"] for path in paths)
    assert "run_id" not in merged
    workers = {branch["worker"] for group in merged["orchestration_results"].values() for branch in group["branches"]}
    assert {worker.split(":")[0] for worker in workers} == {"1/3", "2/3", "3/3"}  # each shard's threads are its own
    out = capsys.readouterr().out
    assert "merged 3 of 3 shards: 8 aligned, 2 failed, 0 not run; circuit breaker closed" in out
    page = (tmp_path / "merged" / "alignment_results.html").read_text(encoding="utf-8")
    assert page.count('<tr class="shard">') == 3
    assert "3 of 3 shards merged" in page


# Backup names that clash across shards: ``a``'s first backup name is a folder of ``a-pre-align/b``'s, and
# ``x``'s is the listed branch ``backup-x-pre-align`` (at x's very tip, so a run blind to it would reuse it).
CLASHING = [("a", "main"), ("x", "main"), ("a-pre-align/b", "dev"), ("backup-x-pre-align", "dev")]


def clashing_repo(path: Path) -> Repo:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    repo = Repo(path)
    base = repo.commit("main", {"app.py": "1\n"}, "initial")
    repo.branch("dev", base)
    for name, _ in CLASHING[:3]:
        repo.commit(name, {f"{name.replace('/', '-')}.txt": "x\n"}, parent=base)
    repo.branch("backup-x-pre-align", repo.tip("x"))
    repo.commit("main", {"main.txt": "m\n"})
    repo.commit("dev", {"dev.txt": "d\n"})
    return repo


def outcomes(results: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Each branch's status and backup, from a run's (or a plan's) results."""
    return {
        branch["branch_name"]: (branch["status"], branch["backup_branch"])
        for group in results["orchestration_results"].values()
        for branch in group["branches"]
    }


@pytest.mark.parametrize("order", [(1, 2), (2, 1)])
def test_backup_names_clashing_across_shards_are_chosen_as_in_one_unsharded_run(
    tmp_path: Path, order: tuple[int, int]
) -> None:
    """Each shard keeps clear of the whole input's branches and their backup names, whichever shard runs
    first; each shard's plan predicts what its run does."""
    path = write_input(tmp_path / "in.json", [entry(*item) for item in CLASHING])
    whole = outcomes(
        BranchAlignmentOrchestrator(reports_dir=tmp_path / "whole").run(path, clashing_repo(tmp_path / "w").path)
    )
    assert whole == {
        "a": ("completed", "backup-a-pre-align-2"),
        "x": ("completed", "backup-x-pre-align-2"),
        "a-pre-align/b": ("completed", "backup-a-pre-align/b-pre-align"),
        "backup-x-pre-align": ("completed", "backup-backup-x-pre-align-pre-align"),
    }
    repo = clashing_repo(tmp_path / "sharded")
    planned: dict[str, tuple[str, str | None]] = {}
    sharded: dict[str, tuple[str, str | None]] = {}
    for index in order:
        orchestrator = BranchAlignmentOrchestrator(reports_dir=tmp_path / f"shard-{index}", shard=f"{index}/2")
        planned |= outcomes(orchestrator.plan(path, repo.path))
        sharded |= outcomes(orchestrator.run(path, repo.path))
    assert sharded == whole
    assert {name: status for name, (status, _) in planned.items()} == {name: "completed" for name in whole}


def test_each_shards_circuit_breaker_is_kept_and_any_trip_trips_the_whole(tmp_path: Path) -> None:
    entries = [entry(name, "main") for name in ("bad-0", "bad-1", "ok-0", "ok-1")]
    entries += [entry(name, "dev") for name in ("dev-0", "dev-1", "dev-2", "ok-2")]
    config = settings(failure_threshold_count=2, failure_threshold_percent=50, max_workers_per_target=1)
    paths = shard_files(tmp_path, 2, config=config, entries=entries)
    assert cli(["merge-results", *map(str, paths), "-o", str(tmp_path / "merged")]) == 0
    merged = read(tmp_path / "merged" / "alignment_results.json")
    summary = merged["overall_summary"]
    first, second = merged["shards"]["runs"]
    assert (first["circuit_breaker_triggered"], second["circuit_breaker_triggered"]) == (True, False)
    assert summary["circuit_breaker_triggered"] is True
    assert summary["circuit_breaker_reason"] == f"shard 1/2: {first['circuit_breaker_reason']}"
    assert summary["circuit_breaker_tripped_at"] == first["circuit_breaker_tripped_at"]
    assert merged["orchestration_results"]["main"]["not_run"] == ["ok-0", "ok-1"]
    assert (summary["total_successful"], summary["total_failed"], summary["total_not_run"]) == (4, 2, 2)
    page = (tmp_path / "merged" / "alignment_results.html").read_text(encoding="utf-8")
    assert escape(f"circuit breaker open: {first['circuit_breaker_reason']}") in page
    assert "<td>2/2</td>" in page
    assert '<td class="breaker">circuit breaker closed</td>' in page


def test_a_missing_shard_is_said_and_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, _ = shard_files(tmp_path, 2)
    assert cli(["merge-results", str(first), "-o", str(tmp_path / "merged")]) == 0
    assert "warning: no results of shard 2/2: its branches are not in the merged results" in capsys.readouterr().out
    merged = read(tmp_path / "merged" / "alignment_results.json")
    assert merged["shards"]["missing"] == [2]
    assert "no results given" in (tmp_path / "merged" / "alignment_results.html").read_text(encoding="utf-8")


def test_refusals_are_one_line_exit_4_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = shard_files(tmp_path, 2)
    (third,) = shard_files(tmp_path, 1)
    (tmp_path / "other").mkdir()
    other = shard_files(tmp_path / "other", 2, entries=[entry(*item) for item in INPUT[:-1]])[1]

    def edited(name: str, change: Any) -> Path:
        data = json.loads(second.read_text(encoding="utf-8"))
        change(data)
        path = tmp_path / name
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    overlapping = edited("overlap.json", lambda data: data["orchestration_results"]["dev"]["not_run"].append("ok-4"))
    unsharded = edited("unsharded.json", lambda data: data.pop("shard"))
    planned = edited("plan.json", lambda data: data.update(planned=True))
    broken = edited("broken.json", lambda data: data["overall_summary"].pop("total_failed"))
    no_summary = edited("summary.json", lambda data: data.update(overall_summary=[]))
    bad_shard = edited("bad-shard.json", lambda data: data["shard"].update(index=3))
    partial = edited("partial.json", lambda data: data["orchestration_results"]["main"]["branches"].pop())  # -k
    foreign_target = edited("target.json", lambda data: data["shard"].update(pieces=[]))
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    (tmp_path / "oops.json").write_text("{oops", encoding="utf-8")
    cases = [
        ([first, other], f"{other}: shard.input_sha256: a shard of another input than {first}"),
        ([first, third], f"{third}: shard.count: shard 1/1, but {first} is shard 1/2: split another way"),
        ([first, first], f"{first}: shard.index: shard 1/2 again: {first} is shard 1/2 too"),
        ([first, overlapping], f"{overlapping}: orchestration_results: branch 'ok-4' is also in {first}"),
        ([unsharded], f"{unsharded}: shard: missing: not the results of a --shard K/N run"),
        ([planned], f"{planned}: planned: a plan; merge-results combines the results of runs"),
        ([broken], f"{broken}: not the results of an alignment run (missing field 'total_failed')"),
        ([no_summary], f"{no_summary}: overall_summary: expected an object, got a list"),
        ([bad_shard], f"{bad_shard}: shard: shard '3/2': expected K/N"),
        (
            [first, partial],
            f"{partial}: orchestration_results.main: shard 2/2 holds 3 branches of target 'main' (shard.pieces) "
            "but lists 2: a run of part of them (-k, --lf); rerun the shard whole to merge it",
        ),
        ([foreign_target], f"{foreign_target}: orchestration_results.main: a target its shard.pieces does not list"),
        (
            [tmp_path / "list.json"],
            "list.json: top level: expected the object of an alignment_results.json, got a list",
        ),
        ([tmp_path / "oops.json"], "oops.json: line 1, column 2: invalid JSON"),
        ([tmp_path / "missing.json"], "missing.json: file not found"),
    ]
    capsys.readouterr()
    for paths, message in cases:
        assert cli(["merge-results", *map(str, paths), "-o", str(tmp_path / "merged")]) == 4, message
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.count("\n") == 1, captured.err
        assert captured.err.startswith("error: "), captured.err
        assert message in captured.err
    assert not (tmp_path / "merged").exists()
    before = first.read_bytes()
    for output in (first, first / "merged"):  # an existing file; a folder under a file
        assert cli(["merge-results", str(first), str(second), "-o", str(output)]) == 4
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"error: {output}: -o: expected a directory to write the merged results in ("), (
            captured.err
        )
        assert captured.err.count("\n") == 1, captured.err
    assert first.read_bytes() == before
    with pytest.raises(UsageProblem, match="at least one shard"):
        merge_results([])


def test_merge_results_never_writes_over_the_results_it_merges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o`` a shard's own run folder (by any path) would replace that shard's results with the merged
    ones, and `alignment runs` would then list the merged counts as the shard's run: refused, nothing written."""
    first, second = shard_files(tmp_path, 2)
    run_folder = (first.parent / "latest").resolve()
    (tmp_path / "link").symlink_to(run_folder)
    inputs = [run_folder / "alignment_results.json", second]
    before = {path: path.read_bytes() for path in tmp_path.rglob("alignment_results.*")}
    capsys.readouterr()
    for output, replaced in [
        (run_folder, inputs[0]),
        (tmp_path / "link", inputs[0]),
        (second.parent / "runs" / ".." / ".", second),
    ]:
        assert cli(["merge-results", *map(str, inputs), "-o", str(output)]) == 4, output
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == (
            f"error: {output}: -o: writing there would replace {replaced}, one of the results being merged; "
            "give another directory\n"
        )
    assert {path: path.read_bytes() for path in tmp_path.rglob("alignment_results.*")} == before


def test_merge_results_from_the_command_line(tmp_path: Path) -> None:
    paths = shard_files(tmp_path, 2)
    done = subprocess.run(
        [sys.executable, "-m", "alignment", "merge-results", *map(str, paths), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"results: {tmp_path / 'out' / 'alignment_results.json'}" in done.stdout
    assert (tmp_path / "out" / "alignment_results.html").exists()


def test_the_orchestrator_refuses_a_bad_shard_before_anything() -> None:
    for value in ("0/4", "5/4", "x"):
        with pytest.raises(UsageProblem, match=f"shard '{value}': expected K/N"):
            BranchAlignmentOrchestrator(shard=value)
