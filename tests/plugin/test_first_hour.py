"""What a new user meets in the first hour: bad input refused in one line, warnings, and honest counts."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from alignment.scratch import create_scratch, release
from tests.conftest import Repo, entry, write_input

PROJECT = Path(__file__).resolve().parents[2]
ALIGNMENT_DIR = PROJECT / "alignment"
pytestmark = pytest.mark.slow


def align(pytester: pytest.Pytester, tmp_path: Path, *args: str) -> pytest.RunResult:
    """``pytest alignment/ ARGS`` in-process, with the reports and the cache under ``tmp_path``."""
    reports = str(tmp_path / "reports")
    return pytester.runpytest_inprocess(
        str(ALIGNMENT_DIR), "--reports-dir", reports, "-o", f"cache_dir={tmp_path / 'cache'}", *args
    )


def the_error(result: pytest.RunResult) -> str:
    """The one ``ERROR:`` line of a refused run (and no traceback)."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR")]
    assert len(errors) == 1, result.errlines
    assert "Traceback" not in "\n".join(result.outlines + result.errlines)
    return errors[0]


def test_a_missing_target_is_one_error_line_before_anything_runs(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.branch("next-gen", "main")
    repo.git("update-ref", "refs/remotes/origin/next", repo.tip("main"))
    path = write_input(tmp_path / "in.json", [entry("feature", "mian"), entry("other", "next")])
    refs = repo.git("for-each-ref")
    error = the_error(align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path)))
    assert "branches[0].assigned_target: target 'mian' is not a branch of" in error
    assert "(closest existing branch: 'main')" in error
    assert "'origin/next' exists: pass --remote origin" in error
    assert repo.git("for-each-ref") == refs
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("name", "package"), [("timeout", "pytest-timeout"), ("pytest_jsonreport", "pytest-json-report")]
)
def test_a_plugin_the_run_needs_disabled_is_one_error_line_and_keeps_the_last_run(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path, name: str, package: str
) -> None:
    """Without pytest-timeout the branches' timeout mark was an unknown mark: a collection error, and a run of
    "0 branches" replaced ``latest`` and the results."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    path = write_input(tmp_path / "in.json", [entry("feature")])
    args = ("--input", str(path), "--repo", str(repo.path))
    align(pytester, tmp_path, *args).assert_outcomes(passed=1)
    reports = tmp_path / "reports"
    before = {item: item.read_bytes() for item in reports.rglob("*") if item.is_file()}
    latest = (reports / "latest").resolve()
    error = the_error(align(pytester, tmp_path, *args, "-p", f"no:{name}"))
    assert error == f"ERROR: an alignment run needs {package}: do not disable it with -p no:{name}"
    assert {item: item.read_bytes() for item in reports.rglob("*") if item.is_file()} == before
    assert (reports / "latest").resolve() == latest


def test_a_reports_dir_the_run_could_not_finish_in_is_one_error_line_before_anything_moves(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    path = write_input(tmp_path / "in.json", [entry("feature")])
    refs = repo.git("for-each-ref")
    for reports in (path, path / "reports"):  # a file; a folder inside one
        error = the_error(
            align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--reports-dir", str(reports))
        )
        assert error == f"ERROR: reports directory {reports}: expected a directory, but {path} is a file"
    runs = tmp_path / "other" / "runs"
    runs.parent.mkdir()
    runs.write_text("")  # the folder of the runs is a file
    error = the_error(
        align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--reports-dir", str(runs.parent))
    )
    assert error == f"ERROR: reports directory {runs.parent}: expected a directory, but {runs} is a file"
    uncreatable = Path("/proc/alignment-reports")  # no one can make a directory there, root included
    error = the_error(
        align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--reports-dir", str(uncreatable))
    )
    assert error.startswith(f"ERROR: reports directory {uncreatable}: cannot make the run's folder {uncreatable}/")
    latest = tmp_path / "reports" / "latest"
    latest.mkdir(parents=True)  # a reports folder copied with its symlinks followed
    error = the_error(align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path)))
    assert error == (
        f"ERROR: {latest}: expected the symlink to the last run's folder, got a directory: move it away (runs "
        "point latest at their folder)"
    )
    assert repo.git("for-each-ref") == refs
    assert [item.name for item in (tmp_path / "reports").iterdir()] == ["latest"]
    assert align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--plan").ret == 0
    assert latest.is_dir()  # a plan does not point latest anywhere: it runs


def test_an_empty_input_changes_nothing(pytester: pytest.Pytester, repo: Repo, tmp_path: Path) -> None:
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    first = align(
        pytester,
        tmp_path,
        "--input",
        str(write_input(tmp_path / "in.json", [entry("feature")])),
        "--repo",
        str(repo.path),
    )
    first.assert_outcomes(passed=1)
    latest = (tmp_path / "reports" / "latest").resolve()
    results = (tmp_path / "reports" / "alignment_results.json").read_text()
    empty = write_input(tmp_path / "empty.json", [])
    error = the_error(align(pytester, tmp_path, "--input", str(empty), "--repo", str(repo.path)))
    assert f"{empty}: branches: the list is empty" in error
    assert (tmp_path / "reports" / "latest").resolve() == latest
    assert (tmp_path / "reports" / "alignment_results.json").read_text() == results
    assert len(list((tmp_path / "reports" / "runs").iterdir())) == 1


def test_unknown_input_keys_are_noted_at_the_end_even_with_q(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    path = tmp_path / "in.json"
    branches = [{"branch_name": "feature", "assigned_target": "main", "tag": ["x"]}]
    path.write_text(json.dumps({"$schema": "./s.json", "branches": branches, "branchez": []}))
    notes = [
        f"note: {path}: branchez: unknown key, not used (did you mean branches?)",
        f"note: {path}: branches[0].tag: unknown key, kept but not used (did you mean tags?)",
    ]
    result = align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "-q")
    result.assert_outcomes(passed=1)
    assert [line for line in result.outlines if line.startswith("note: ")] == notes
    collected = align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "-q", "--collect-only")
    assert [line for line in collected.outlines if line.startswith("note: ")] == notes


def test_timeout_option_is_noted_as_not_applying_to_the_branches(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    """Each branch's own timeout mark overrides pytest-timeout's ``--timeout``: the summary says so, even with -q."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    path = write_input(tmp_path / "in.json", [entry("feature")])
    done = align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--timeout", "7", "-q")
    done.assert_outcomes(passed=1)
    assert (
        "note: --timeout 7 does not apply to the branches: each has the limit of the config key "
        "branch_alignment_timeout_seconds (300 s) instead"
    ) in done.outlines


def test_paths_in_errors_are_normalised(pytester: pytest.Pytester, repo: Repo, tmp_path: Path) -> None:
    roundabout = tmp_path / "sub" / ".." / "bad" / "x.json"
    error = the_error(align(pytester, tmp_path, "--input", str(roundabout), "--repo", str(repo.path)))
    assert f"{tmp_path / 'bad' / 'x.json'}: file not found" in error


WITHOUT_DEV_EXTRAS = "import sys; sys.modules['jsonschema'] = None; import pytest; sys.exit(pytest.main(sys.argv[1:]))"


def test_the_checkout_without_the_dev_extras_helps_and_says_what_to_install() -> None:
    """After ``pip install -e .`` alone: ``pytest --help`` works, ``pytest`` says which install it needs."""

    def pytest_here(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", WITHOUT_DEV_EXTRAS, "-p", "no:cacheprovider", *args]
        return subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=120, check=False)

    shown = pytest_here("--help")
    assert (shown.returncode, shown.stderr) == (0, "")
    assert "--input=PATH" in shown.stdout
    tests = pytest_here("-q")
    assert tests.returncode == pytest.ExitCode.USAGE_ERROR
    assert tests.stderr.strip() == (
        "ERROR: the project's own tests need the dev extras (jsonschema is not installed): "
        "pip install -e '.[dev]', or run tox"
    )


def test_a_plan_of_one_long_named_branch_speaks_in_the_singular_and_keeps_the_reason(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    name = "feature/" + "a-very-long-branch-name-" * 4 + "end"
    repo.commit(name, {"app.py": "mine\n"}, parent=repo.tip("main"))
    repo.commit("main", {"app.py": "theirs\n"})
    path = write_input(tmp_path / "in.json", [entry(name)])
    result = align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--plan")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert ": the input lists 1 branch for 1 target; repository " in output
    assert "1 branch: 0 would align, 1 would fail, 0 not run; 1 conflict, 1 with their cause named; " in output
    assert "0 branch pairs conflict with each other" in output
    reason = f"{name}: Merge conflict in app.py (unresolvable) - caused by "
    assert any(line.startswith(reason) and line.endswith('"change" (Test Author)') for line in result.outlines)
    page = (tmp_path / "reports" / "alignment_plan.html").read_text()
    assert "<b>1</b> branch</span>" in page
    assert "<b>1</b> conflict (1 with their cause)</span>" in page
    assert "circuit breaker not applied to a plan" in page
    assert "circuit breaker closed" not in page


def test_a_failure_line_names_each_distinct_cause_up_to_three(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    paths = [f"f{index}.txt" for index in range(6)]
    repo.commit("feature", dict.fromkeys(paths, "mine\n"), parent=repo.tip("main"))
    shared = repo.commit("main", dict.fromkeys(paths[:2], "theirs\n"), "change 0 and 1")  # one cause, two paths
    causes = [shared] + [repo.commit("main", {path: "theirs\n"}, f"change {path}") for path in paths[2:]]
    path = write_input(tmp_path / "in.json", [entry("feature")])
    result = align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--plan")
    result.assert_outcomes(failed=1)
    named = "; ".join(
        f'{commit[:10]} "{subject}" (Test Author)'
        for commit, subject in zip(causes[:3], ["change 0 and 1", "change f2.txt", "change f3.txt"], strict=True)
    )
    conflict = f"Merge conflict in {', '.join(paths)} (unresolvable)"
    assert f"feature: {conflict} - caused by {named}; and 2 more" in result.outlines


@pytest.mark.parametrize("inside", [False, True], ids=["reports-elsewhere", "reports-here"])
def test_tb_line_shows_each_failed_branch_on_one_line_an_editor_opens_at_its_change_document(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path, inside: bool
) -> None:
    """pytest's line style prints a failure's entries, then its crash: the entries were the message again and
    the crash this plugin's own source line; then the test id, which no editor parsing ``file:line:`` opens.
    The line names the branch's change document (relative to the current directory when inside it)."""
    repo.commit("clash", {"app.py": "clash\n"}, parent=repo.tip("main"))
    repo.commit("main", {"app.py": "main\n"})
    path = write_input(tmp_path / "in.json", [entry("clash")])
    reports = pytester.path / "reports" if inside else tmp_path / "reports"
    args = ("--input", str(path), "--repo", str(repo.path), "--tb=line", "--reports-dir", str(reports))
    shown = align(pytester, tmp_path, *args).outlines
    failures = shown[shown.index(next(line for line in shown if "= FAILURES =" in line)) + 1 :]
    data = json.loads((reports / "alignment_results.json").read_text())
    document = Path(data["orchestration_results"]["main"]["branches"][0]["document"])
    assert document.is_file()
    named = document.relative_to(pytester.path) if inside else document
    assert list(itertools.takewhile(lambda line: not line.startswith(("=", "-")), failures)) == [
        f"{named}:1: Merge conflict in app.py (unresolvable)"
    ]


def test_after_the_demo_what_next_and_one_demo_directory(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    first = align(pytester, tmp_path, "--demo")
    first.assert_outcomes(passed=16, failed=4)
    assert "warning" not in first.stdout.str()
    first.stdout.fnmatch_lines(
        [
            "feature/auth: Merge conflict in src/auth.py (unresolvable) - caused by * (Demo Author)",
            "next:",
            "  pytest alignment/ --demo --plan      predict the same outcomes; nothing is changed",
            "  pytest alignment/ -n 4 --input categorized_branches.json --repo PATH    your own branches *",
            f"  open {tmp_path / 'reports' / 'runs'}/*/alignment_results.html    the report: *",
        ]
    )
    assert len(list(temporary.glob("alignment-demo-*"))) == 1
    align(pytester, tmp_path, "--demo", "--plan").assert_outcomes(passed=16, failed=4)
    assert len(list(temporary.glob("alignment-demo-*"))) == 1


def test_targets_that_fold_to_one_marker_get_distinct_markers(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    for target in ("rel-1.0", "rel_1_0", "orchestration-tools"):
        repo.branch(target, "main")
    entries = [entry("a", "rel-1.0"), entry("b", "rel_1_0"), entry("c", "rel_1_0"), entry("d", "orchestration-tools")]
    path = write_input(tmp_path / "in.json", entries)
    args = ("--input", str(path), "--repo", str(repo.path))

    def selected(marker: str, *more: str) -> list[str]:
        collected = align(pytester, tmp_path, *args, *more, "--collect-only", "-q", "-m", marker)
        return [line.rpartition("[")[2].rstrip("]") for line in collected.outlines if "::test_branch[" in line]

    assert selected("target_rel_1_0") == ["b", "c"]
    assert selected("target_rel_1_0_59a297") == ["a"]
    assert selected("target_orchestration_tools") == ["d"]  # no other target folds to it: no suffix
    shown = align(pytester, tmp_path, *args, "--markers")
    shown.stdout.fnmatch_lines(["@pytest.mark.target_rel_1_0_59a297: branches aligned with 'rel-1.0'"])
    in_shards = [name for index in (1, 2, 3) for name in selected("target_rel_1_0", "--shard", f"{index}/3")]
    assert sorted(in_shards) == ["b", "c"]  # 'a' and 'b' are in different shards: their markers stay apart


def test_a_target_named_like_another_s_suffixed_marker_keeps_its_own(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    """``rel-1.0`` would take ``target_rel_1_0_59a297``, the plain marker of a target of that name: its suffix
    grows by a digit, and each marker selects one target."""
    targets = ("rel-1.0", "rel_1_0", "rel_1_0_59a297")
    for target in targets:
        repo.branch(target, "main")
    path = write_input(tmp_path / "in.json", [entry(f"f-{target}", target) for target in targets])
    args = ("--input", str(path), "--repo", str(repo.path))
    shown = align(pytester, tmp_path, *args, "--markers").outlines
    assert [line for line in shown if "target_" in line] == [
        "@pytest.mark.target_rel_1_0_59a2978: branches aligned with 'rel-1.0'",
        "@pytest.mark.target_rel_1_0: branches aligned with 'rel_1_0'",
        "@pytest.mark.target_rel_1_0_59a297: branches aligned with 'rel_1_0_59a297'",
    ]
    collected = align(pytester, tmp_path, *args, "--collect-only", "-q", "-m", "target_rel_1_0_59a297").outlines
    assert [line for line in collected if "::test_branch[" in line] == [
        "alignment/test_branches.py::test_branch[f-rel_1_0_59a297]"
    ]


def test_collect_only_writes_no_run(pytester: pytest.Pytester, repo: Repo, tmp_path: Path) -> None:
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    path = write_input(tmp_path / "in.json", [entry("feature"), entry("other")])
    align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path)).assert_outcomes(passed=1, failed=1)
    reports = tmp_path / "reports"
    before = {item: item.read_bytes() for item in reports.rglob("*") if item.is_file()}
    latest = (reports / "latest").resolve()
    collected = align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--collect-only", "--lf")
    assert collected.ret == pytest.ExitCode.OK
    collected.stdout.fnmatch_lines(["*rerun previous 1 failure*", "*test_branch?other?*", "*no run was made*"])
    assert {item: item.read_bytes() for item in reports.rglob("*") if item.is_file()} == before
    assert (reports / "latest").resolve() == latest
    rerun = align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), "--lf")
    rerun.assert_outcomes(failed=1)  # only the branch that failed: collecting forgot nothing and added nothing


@pytest.mark.parametrize(
    ("late", "error"),
    [
        (["no_such_dir"], "ERROR: file or directory not found: no_such_dir"),  # refused in collection
        (["--log-level", "LOUD"], "ERROR: 'LOUD' is not recognized as a logging level name*"),  # in configure
        (["-n", "2", "--px", "popen"], "ERROR: Proxy gateway popen must include an id"),  # at session start
    ],
    ids=["collection", "configure", "sessionstart"],
)
def test_a_session_pytest_refuses_after_the_setup_publishes_nothing(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path, late: list[str], error: str
) -> None:
    """The run is set up (its folder made) before pytest finishes checking its own options and arguments."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    path = write_input(tmp_path / "in.json", [entry("feature")])
    align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path)).assert_outcomes(passed=1)
    repo.commit("main", {"m.txt": "m\n"})  # something for the refused run to align
    reports = tmp_path / "reports"
    before = {item: item.read_bytes() for item in reports.rglob("*") if item.is_file()}
    latest, tip = (reports / "latest").resolve(), repo.tip("feature")
    refused = align(pytester, tmp_path, "--input", str(path), "--repo", str(repo.path), *late)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines([error])
    assert {item: item.read_bytes() for item in reports.rglob("*") if item.is_file()} == before
    assert len(list((reports / "runs").iterdir())) == 1
    assert (reports / "latest").resolve() == latest
    assert repo.tip("feature") == tip


def test_lf_memory_is_per_input_and_repository(pytester: pytest.Pytester, repo: Repo, tmp_path: Path) -> None:
    base = repo.tip("main")
    repo.commit("other", {"app.py": "other\n"}, parent=base)
    repo.commit("x", {"app.py": "mine\n"}, parent=base)  # merges into main, conflicts with other
    repo.commit("y", {"m.txt": "y\n"}, parent=base)
    repo.commit("main", {"m.txt": "main\n"})  # y conflicts with main
    both = write_input(tmp_path / "both.json", [entry("x"), entry("y")])
    onto_other = write_input(tmp_path / "other.json", [entry("x", "other")])
    align(pytester, tmp_path, "--input", str(both), "--repo", str(repo.path)).assert_outcomes(passed=1, failed=1)
    align(pytester, tmp_path, "--input", str(onto_other), "--repo", str(repo.path)).assert_outcomes(failed=1)
    rerun = align(pytester, tmp_path, "--input", str(both), "--repo", str(repo.path), "--lf")
    rerun.assert_outcomes(failed=1)  # y only: x failed for the other input, not for this one
    assert "selected: 1 of the input's 2 branches" in rerun.stdout.str()
    project_memory = tmp_path / "cache" / "v" / "cache" / "lastfailed"
    assert "test_branch" not in (project_memory.read_text() if project_memory.exists() else "")


@pytest.mark.parametrize("workers", [(), ("-n", "2")])
def test_pytest_counts_agree_with_the_run_after_a_breaker_trip(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path, workers: tuple[str, ...]
) -> None:
    base = repo.tip("main")
    names = [f"bad-{index}" for index in range(20)]
    for name in names:
        repo.commit(name, {"app.py": f"{name}\n"}, parent=base)
    repo.commit("main", {"app.py": "theirs\n"})
    path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    config = tmp_path / "alignment.yaml"
    config.write_text("orchestration:\n  failure_threshold_count: 2\n  failure_threshold_percent: 50\n")
    argv = [str(ALIGNMENT_DIR), "--reports-dir", str(tmp_path / "reports"), "-p", "no:cacheprovider"]
    argv += ["--input", str(path), "--repo", str(repo.path), "--config", str(config), *workers]
    result = pytester.runpytest_subprocess(*argv, timeout=300) if workers else pytester.runpytest_inprocess(*argv)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    summary = json.loads((tmp_path / "reports" / "alignment_results.json").read_text())["overall_summary"]
    assert summary["total_not_run"] > 0
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped", 0) == summary["total_not_run"]
    assert outcomes.get("failed", 0) == summary["total_failed"]
    assert outcomes.get("passed", 0) == summary["total_successful"]


@pytest.mark.parametrize(
    "informational",
    [
        ["--fixtures"],
        ["--fixtures-per-test"],
        ["--setup-plan"],
        ["--setup-only"],
        ["--setup-only", "-n", "2"],
        ["--cache-show"],
    ],
    ids=["fixtures", "fixtures-per-test", "setup-plan", "setup-only", "setup-only-xdist", "cache-show"],
)
def test_an_option_that_runs_nothing_writes_no_run_and_touches_no_ref(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path, informational: list[str]
) -> None:
    """Like ``--collect-only``: no run folder, ``latest``, the results and ``--lf``'s list as they were, and no
    backup ref (``--setup-only`` sets fixtures up, and a branch's fixture creates its backup)."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    path = write_input(tmp_path / "in.json", [entry("feature"), entry("other")])
    args = ("--input", str(path), "--repo", str(repo.path))
    align(pytester, tmp_path, *args).assert_outcomes(passed=1, failed=1)
    repo.commit("main", {"m.txt": "m\n"})  # something a run would align
    reports = tmp_path / "reports"
    before = {item: item.read_bytes() for item in reports.rglob("*") if item.is_file()}
    latest, refs = (reports / "latest").resolve(), repo.git("for-each-ref")
    shown = align(pytester, tmp_path, *args, *informational)
    assert shown.ret == pytest.ExitCode.OK, shown.outlines
    assert "circuit breaker" not in shown.stdout.str()
    assert {item: item.read_bytes() for item in reports.rglob("*") if item.is_file()} == before
    assert (reports / "latest").resolve() == latest
    assert repo.git("for-each-ref") == refs
    align(pytester, tmp_path, *args, "--lf").assert_outcomes(failed=1)  # --lf's list is the real run's


@pytest.mark.parametrize(
    "given",
    [["--help"], ["--markers"], ["--collect-only"], ["--fixtures"], ["--log-level=bogus"], ["-k", "a and"]],
    ids=["help", "markers", "collect-only", "fixtures", "bad-log-level", "bad-k"],
)
def test_a_session_that_runs_nothing_changes_nothing_in_the_repository(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path, given: list[str]
) -> None:
    """No empty ``reports/`` and ``reports/runs/`` where none was; no commit-graph cache and no cleanup after a
    dead run in the repository, whether the session only shows or pytest refuses it after the set-up (its
    ``--log-level`` check comes after the run is set up, its ``-k`` check in collection): both were done in the
    set-up. A session that runs does both."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    (tmp_path / "tmp").mkdir()
    dead = create_scratch("20260101T000000Z-abcdef", tmp_path / "tmp")
    release(dead)  # its owner is gone
    (dead / "worktrees").mkdir()
    repo.git("worktree", "add", "-q", "--detach", str(dead / "worktrees" / "wt-1"), "main")
    graph = repo.path / ".git" / "objects" / "info" / "commit-graph"
    path = write_input(tmp_path / "in.json", [entry("feature")])
    args = ("--input", str(path), "--repo", str(repo.path))
    align(pytester, tmp_path, *args, *given)
    assert not (tmp_path / "reports").exists()
    assert not graph.exists()
    assert str(dead) in repo.git("worktree", "list")
    done = align(pytester, tmp_path, *args)
    done.assert_outcomes(passed=1)
    assert graph.exists()
    assert str(dead) not in repo.git("worktree", "list")
    done.stdout.fnmatch_lines([f"note: removed worktree {dead}* left by a run that did not finish"])


def test_lf_after_a_trip_starts_the_never_started_branches_first(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    """The first five listed branches conflict and trip the default breaker (5 failures, 50%): the rerun
    starts the five never started before them, so it aligns them instead of tripping again first."""
    base = repo.commit("main", {"f.txt": "1\n2\n3\n"})
    for number in range(1, 6):
        repo.commit(f"c{number}", {"f.txt": f"1\nc{number}\n3\n"}, parent=base)
        repo.commit(f"ok{number}", {f"o{number}.txt": "o\n"}, parent=base)
    repo.commit("main", {"f.txt": "1\nM\n3\n"})
    names = [f"c{number}" for number in range(1, 6)] + [f"ok{number}" for number in range(1, 6)]
    path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    args = ("--input", str(path), "--repo", str(repo.path))
    align(pytester, tmp_path, *args).assert_outcomes(failed=5, skipped=5)
    rerun = align(pytester, tmp_path, *args, "--lf")
    rerun.assert_outcomes(passed=5, failed=5)
    main = repo.tip("main")
    assert all(repo.git("merge-base", main, f"ok{number}") == main for number in range(1, 6))


def test_a_config_repo_path_that_does_not_exist_is_one_error_line_naming_the_file(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    """Used only without --repo; then refused with the file, the key and the path it came to."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    path = write_input(tmp_path / "in.json", [entry("feature")])
    config = tmp_path / "alignment.yaml"
    config.write_text("orchestration:\n  repo_path: gone\n", encoding="utf-8")
    error = the_error(align(pytester, tmp_path, "--input", str(path), "--config", str(config)))
    assert error == f"ERROR: {config}: orchestration.repo_path: no such directory: {tmp_path / 'gone'}"
    done = align(pytester, tmp_path, "--input", str(path), "--config", str(config), "--repo", str(repo.path))
    done.assert_outcomes(passed=1)
