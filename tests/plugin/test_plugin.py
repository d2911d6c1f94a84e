"""The pytest front end, driven the way users drive it: real pytest sessions with and without ``-n``."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from alignment.demo import EXPECTED_FILE, build_demo
from alignment.journal import MoveJournal
from alignment.model import parse_iso_utc
from alignment.orchestrator import BranchAlignmentOrchestrator
from alignment.runs import RESULTS_FILE, RunFolder
from alignment.session import moves_made
from tests import conftest
from tests.conftest import Repo, entry, load_schema, write_input
from tests.fakes import max_overlap

PROJECT = Path(__file__).resolve().parents[2]
ALIGNMENT_DIR = PROJECT / "alignment"
pytestmark = pytest.mark.slow


class Run:
    """One inner pytest run and what it left behind."""

    def __init__(self, result: pytest.RunResult, reports: Path) -> None:
        self.result = result
        self.reports = reports

    @property
    def output(self) -> str:
        return "\n".join(self.result.outlines + self.result.errlines)

    @property
    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.reports / "alignment_results.json").read_text())
        jsonschema.validate(loaded, load_schema())
        return loaded

    def branches(self) -> dict[str, dict[str, Any]]:
        return {b["branch_name"]: b for group in self.data["orchestration_results"].values() for b in group["branches"]}

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.reports / "latest" / "audit.jsonl").read_text().splitlines()]


@pytest.fixture
def run(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run ``pytest alignment/ ARGS`` in a subprocess (``-n`` in args) or in-process.

    Temporary files of the run (scratch directories, a demo repository, what a killed worker leaves) go
    under ``tmp_path``, not the machine's temporary directory.
    """
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))

    def run_pytest(*args: str, reports: Path | None = None, subprocess: bool = False, **options: Any) -> Run:
        """``options``: for ``runpytest_inprocess`` (``no_reraise_ctrlc=True``: a KeyboardInterrupt of the inner
        run ends only that run)."""
        reports = reports or tmp_path / "reports"
        argv = [str(ALIGNMENT_DIR), "--reports-dir", str(reports), "-o", f"cache_dir={tmp_path / 'cache'}", *args]
        if subprocess or "-n" in args:
            result = pytester.runpytest_subprocess(*argv, timeout=300)
        else:
            result = pytester.runpytest_inprocess(*argv, **options)
        return Run(result, reports)

    return run_pytest


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    repo, input_path = build_demo(tmp_path / "demo")
    expected = json.loads(input_path.with_name(EXPECTED_FILE).read_text())
    return repo, input_path, expected


def config_file(tmp_path: Path, **orchestration: Any) -> Path:
    path = tmp_path / "alignment.yaml"
    path.write_text(json.dumps({"orchestration": orchestration}), encoding="utf-8")
    return path


MEMORY_PROBE = """
import gc, json, os

import pytest
from _pytest.reports import TestReport

REPORTS_WITH_KEYWORDS = []
WORKERS_WHEN_PUBLISHING = []
WAITING = None  # what collected items hold before any runs (a process that collects nothing: None)
RUNTIME_FINALIZERS = set()  # at each teardown here: how many finalizers the session's runtime fixture holds


FULL_COLLECTIONS = []  # the freeze count at each full collection after the session: pytest's own at the end
RECORDING = False


def _note_collection(phase, info):
    if RECORDING and phase == "start" and info["generation"] == 2:
        FULL_COLLECTIONS.append(gc.get_freeze_count())


def _write_collections(config):  # a cleanup registered before pytest's: it runs after pytest's collections
    gc.callbacks.remove(_note_collection)
    workerinput = getattr(config, "workerinput", None)
    who = workerinput["workerid"] if workerinput else "controller"
    with open(os.path.join(os.environ["PROBE_DIR"], who + ".gc"), "w") as out:
        json.dump(FULL_COLLECTIONS, out)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    global CONFIG
    CONFIG = config
    gc.callbacks.append(_note_collection)
    config.add_cleanup(lambda: _write_collections(config))


def pytest_json_modifyreport(json_report):
    dsession = CONFIG.pluginmanager.getplugin("dsession")
    WORKERS_WHEN_PUBLISHING.append(len(dsession.nodemanager.group) if dsession else 0)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    runtime = item._request._fixture_defs.get("alignment_runtime")
    if runtime is not None:
        RUNTIME_FINALIZERS.add(len(runtime._finalizers))


def pytest_runtest_logreport(report):
    if report.keywords:
        REPORTS_WITH_KEYWORDS.append(report.nodeid)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    global WAITING
    WAITING = {"requests": sum(bool(getattr(item, "_request", None)) for item in session.items),
               "keyword_sets": len({id(item.extra_keyword_matches) for item in session.items})}


def pytest_sessionfinish(session):
    global RECORDING
    RECORDING = True
    workerinput = getattr(session.config, "workerinput", None)  # not the environment: this test may run in one
    who = workerinput["workerid"] if workerinput else "controller"
    terminal = session.config.pluginmanager.get_plugin("terminalreporter")
    kept = {category: len(reports) for category, reports in terminal.stats.items() if category != "warnings"}
    holding = [item.nodeid for item in session.items if item.user_properties]
    marks = len({id(mark) for item in session.items for mark in item.own_markers})
    reports = [report for category, kept in terminal.stats.items() if category != "warnings" for report in kept]
    full_passed = sum(isinstance(report, TestReport) for report in terminal.stats.get("passed", ()))
    reports = [report for report in reports if isinstance(report, TestReport)]
    entries = type(getattr(getattr(session.config, "_json_report", None), "_json_tests", None)).__name__
    watched = {id(tracked) for tracked in gc.get_objects()}  # what the collector walks: not the frozen
    with open(os.path.join(os.environ["PROBE_DIR"], who + ".json"), "w") as out:
        json.dump({"kept": kept, "items_holding_results": holding, "reports_with_keywords": REPORTS_WITH_KEYWORDS,
                   "collected": len(session.items), "distinct_marks": marks,
                   "call_specs_dropped": sum(not hasattr(item, "callspec") for item in session.items),
                   "workers_when_publishing": WORKERS_WHEN_PUBLISHING,
                   "with_json_extras": sum(hasattr(report, "_json_report_extra") for report in reports),
                   "distinct_phase_strings": len({id(report.when) for report in reports}),
                   "full_passed_reports": full_passed, "json_entries": entries, "waiting": WAITING,
                   "runtime_finalizers": sorted(RUNTIME_FINALIZERS),
                   "setup_text_kept": "alignment_setup" in (workerinput or {}),
                   "hypothesis_plugin": session.config.pluginmanager.has_plugin("hypothesispytest"),
                   "subtests_plugin": session.config.pluginmanager.has_plugin("subtests"),
                   "progress_ids": sorted({type(shown).__name__ for shown in terminal._progress_nodeids_reported}),
                   "progress_count": len(terminal._progress_nodeids_reported),
                   "frozen": gc.get_freeze_count(),
                   "items_watched": sum(id(item) in watched for item in session.items)}, out)
"""


def test_a_run_that_also_collects_other_tests_keeps_their_subtests(
    run: Any, demo: tuple[Path, Path, dict[str, str]], pytester: pytest.Pytester
) -> None:
    """pytest's subtests plugin is unregistered only from a run of nothing but branches: another test's failed
    subtest still fails it."""
    repo, input_path, _ = demo
    other = pytester.makepyfile(
        test_other="""
        def test_with_a_failing_subtest(subtests):
            with subtests.test("part"):
                assert False
        """
    )
    done = run("--input", str(input_path), "--repo", str(repo), str(other))
    assert "fixture 'subtests' not found" not in done.output
    done.result.assert_outcomes(passed=16, failed=4 + 2)  # the demo's 4, the subtest and the test that holds it


def test_another_test_s_failed_assertion_beside_the_branches_is_a_failure_not_an_error(
    run: Any, repo: Repo, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    """Only a branch's call is an ``exception`` (an error): another test's failure stays pytest's failure."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    input_path = write_input(tmp_path / "in.json", [entry("feature")])
    other = pytester.makepyfile(test_other="def test_bad():\n    assert 1 == 2\n")
    done = run("--input", str(input_path), "--repo", str(repo.path), str(other))
    done.result.assert_outcomes(passed=1, failed=1)
    tests = json.loads((done.reports / "latest" / "pytest-report.json").read_text())["tests"]
    assert {test["nodeid"].rpartition("::")[2]: test["outcome"] for test in tests} == {
        "test_bad": "failed",
        "test_branch[feature]": "passed",
    }


@pytest.mark.parametrize("workers", [None, "2"])
def test_demo_run_with_and_without_xdist(
    run: Any,
    demo: tuple[Path, Path, dict[str, str]],
    workers: str | None,
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, input_path, expected = demo
    pytester.makepyfile(memory_probe=MEMORY_PROBE)
    monkeypatch.setenv("PYTHONPATH", str(pytester.path))
    monkeypatch.setenv("PROBE_DIR", str(pytester.path))
    monkeypatch.setenv("COLUMNS", "250")  # room for each failure's message in pytest's summary lines
    monkeypatch.syspath_prepend(pytester.path)
    extra = ("-n", workers) if workers else ()
    done = run("--input", str(input_path), "--repo", str(repo), "-p", "memory_probe", *extra)
    done.result.assert_outcomes(passed=16, failed=4)
    # Nothing per branch is kept to the end that no report reads: workers keep no reports, items drop the
    # result once their teardown report carries it, reports carry no keywords (the JSON report omits them),
    # and the controller keeps only what its summary reads (passed setup/teardown reports are let go). Every
    # collecting process builds each target's marks once; the workers have ended when the results are built.
    probes = {path.stem: json.loads(path.read_text()) for path in pytester.path.glob("*.json")}
    assert set(probes) == ({"controller", "gw0", "gw1"} if workers else {"controller"})
    assert probes["controller"]["kept"] == {"": 0, "passed": 16, "failed": 4}
    assert probes["controller"]["progress_count"] == 20  # one per test, as pytest counts them
    assert probes["controller"]["workers_when_publishing"] == [0], "the workers' memory is freed before publishing"
    # Each item that ran let its call spec go (the worker that ran it: each branch runs once).
    assert sum(probe["call_specs_dropped"] for probe in probes.values()) == 20
    # The reports the controller keeps hold no JSON-report extras, and the strings every report repeats once.
    assert (probes["controller"]["with_json_extras"], probes["controller"]["distinct_phase_strings"]) == (0, 1)
    # Passed call reports are counted, not kept (the summary line reads only how many); the JSON report's
    # entries are packed until it is written; a worker keeps no copy of the setup's text.
    assert probes["controller"]["full_passed_reports"] == 0
    assert probes["controller"]["json_entries"] == "PackedTestEntries"
    # What lives to the end (the set-up, the items) is out of the garbage collector's sight until the end;
    # an in-process run gives it back.
    assert all(probe["frozen"] and not probe["items_watched"] for probe in probes.values())
    assert gc.get_freeze_count() == 0
    if workers:  # pytest's own collections at the end of each process (none in-process: pytester skips them)
        collections = {path.stem: json.loads(path.read_text()) for path in pytester.path.glob("*.gc")}
        assert set(collections) == {"controller", "gw0", "gw1"}
        assert all(len(counts) >= 2 and all(counts) for counts in collections.values()), collections
    for probe in probes.values():
        assert probe["items_holding_results"] == []
        assert not probe["setup_text_kept"]
        assert not probe["hypothesis_plugin"], "it would import hypothesis for its summary: 7 MB per process"
        assert not probe["subtests_plugin"], "it keeps an entry per test"
        assert probe["progress_ids"] == ["str"], "the progress count keeps ids as text, not parsed"
        assert probe["reports_with_keywords"] == []
        if probe is not probes["controller"]:
            assert set(probe["kept"].values()) == {0}, "a worker prints no summary: it keeps no report"
        if probe["collected"]:  # the items of a target share its marks: two per target, and the timeout
            assert (probe["collected"], probe["distinct_marks"]) == (20, 2 * 3 + 1)
            # Until an item runs it holds no fixture request, and no set of extra -k names of its own.
            assert probe["waiting"] == {"requests": 0, "keyword_sets": 1}
            # The session's runtime keeps no finalizer per branch (one of a fixture that declared it, and the
            # request behind it, until the session ends): only its own two (pytest's hook call, its yield's end).
            assert probe["runtime_finalizers"] == [2]
    jsonschema.validate(done.data, load_schema())
    assert {name: branch["status"] for name, branch in done.branches().items()} == expected
    assert "branch alignment" in done.output
    assert f"results: {done.reports / 'runs'}" in done.output
    assert "alignment/test_branches.py::test_branch[feature/auth]" in done.output
    assert "Merge conflict in src/auth.py (unresolvable)" in done.output
    notebook = done.branches()["research/notebook"]["findings"]
    assert [(finding["code"], finding["severity"], finding["introduced"]) for finding in notebook] == [
        ("trailing_whitespace", "warning", False)  # the target's line, carried into a file the merge combined
    ]
    workers_seen = {branch["worker"] for branch in done.branches().values()}
    assert workers_seen == ({"gw0", "gw1"} if workers else {"main"})
    pytest_report = json.loads((done.reports / "latest" / "pytest-report.json").read_text())
    assert len(pytest_report["tests"]) == 20
    assert not [test for test in pytest_report["tests"] if "keywords" in test or "log" in test["setup"]]
    stages = [test[when] for test in pytest_report["tests"] for when in ("setup", "call", "teardown")]
    assert not [stage for stage in stages if stage["outcome"] == "passed" and "longrepr" in stage]
    assert all("longrepr" in stage for stage in stages if stage["outcome"] == "failed")
    # A failed branch says its error message, alone: in pytest's summary line and in its report's text and crash.
    conflict = "Merge conflict in src/auth.py (unresolvable)"
    auth = next(test["call"] for test in pytest_report["tests"] if test["nodeid"].endswith("[feature/auth]"))
    said = (auth["outcome"], auth["longrepr"].splitlines()[-1], auth["crash"]["message"])  # after xdist's worker line
    assert said == ("failed", conflict, conflict)
    assert "test_branch[feature/auth] - Merge" in done.output
    assert "Failed: " not in done.output
    # Each test refers to its result in the published results (kept once, by the ledger), not a copy of it.
    assert pytest_report["alignment_results"] == str(done.reports / "runs" / done.data["run_id"] / RESULTS_FILE)
    referenced = {test["nodeid"]: test["user_properties"] for test in pytest_report["tests"]}
    assert referenced["alignment/test_branches.py::test_branch[feature/auth]"] == [{"alignment_result": "feature/auth"}]
    assert {props[0]["alignment_result"] for props in referenced.values()} == set(done.branches())
    log = (done.reports / "latest" / "logs" / "feature%2Fauth.log").read_text()
    assert "INFO alignment.pipeline: aligning 'feature/auth'" in log


def test_the_demo_flag_needs_nothing_else(run: Any) -> None:
    done = run("--demo", "-q")
    done.result.assert_outcomes(passed=16, failed=4)
    assert "demo repository and input:" in done.output


INTERACTIONS_PROBE = """
from pathlib import Path


def pytest_configure(config):
    Path("interactions.txt").write_text("loaded\\n")


def pytest_exception_interact(node):
    with Path("interactions.txt").open("a") as seen:
        seen.write(node.nodeid + "\\n")
"""


def test_a_failed_branch_reaches_pytest_as_its_report_not_as_an_exception(
    run: Any, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest filters and formats the trace of each exception a test raises (through pluggy's frames: about
    1.5 ms a failed branch), and offers it to ``--pdb``; a step failure is a result, so it is only its report."""
    pytester.makepyfile(interactions=INTERACTIONS_PROBE)
    monkeypatch.syspath_prepend(pytester.path)
    done = run("--demo", "-p", "interactions")
    done.result.assert_outcomes(passed=16, failed=4)
    assert (pytester.path / "interactions.txt").read_text() == "loaded\n"


def test_a_run_of_the_harness_from_a_checkout_needs_no_dev_extras(
    run: Any, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a checkout pytest also loads ``tests/conftest.py`` (``--pyargs alignment.test_branches`` names no
    path), whose own tests need the dev extras: a run of the harness is not refused for them; a run of the
    tests still is."""
    monkeypatch.setattr(conftest, "MISSING_DEV_EXTRA", "hypothesis")
    done = run("--demo", "-p", "tests.conftest")
    done.result.assert_outcomes(passed=16, failed=4)
    refused = pytester.runpytest_inprocess("-p", "tests.conftest", "--collect-only")
    assert "the project's own tests need the dev extras (hypothesis is not installed)" in refused.stderr.str()


def test_lf_after_a_run_through_a_linked_worktree_reruns_its_failures_from_the_main_checkout(
    run: Any, demo: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """``--lf`` remembers the failures of an input and a repository: the repository, not the worktree a run
    went through (a failure was forgotten from the main checkout, and lost once the worktree was removed)."""
    repo, input_path, _ = demo
    linked = tmp_path / "linked"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(linked)], check=True)
    first = run("--input", str(input_path), "--repo", str(linked))
    first.result.assert_outcomes(passed=16, failed=4)
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(linked)], check=True)
    rerun = run("--input", str(input_path), "--repo", str(repo), "--lf")
    rerun.result.assert_outcomes(failed=4)


def test_passed_branches_are_listed_when_asked(run: Any) -> None:
    """``-rA`` lists each passed branch: the controller keeps its passed reports then (otherwise it counts them)."""
    done = run("--demo", "-q", "-rA")
    done.result.assert_outcomes(passed=16, failed=4)
    assert re.search(r"^PASSED \S*test_branches.py::test_branch\[feature/logging\]$", done.output, re.MULTILINE)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (
            ("-q", "--durations=30", "--durations-min=0"),
            r"^\d+\.\d+s call +\S*test_branches.py::test_branch\[feature/logging\]$",
        ),
        (("-o", "console_output_style=times"), r"^\S*test_branches.py \.F\.FF\.+F\.+ *$"),
    ],
)
def test_passed_branches_are_kept_for_what_reads_them(run: Any, args: tuple[str, ...], shown: str) -> None:
    """``--durations`` times each passed branch and the ``times`` progress style sums their durations: the
    controller keeps passed reports for them too (a count in their place crashed the ``times`` style with an
    internal error before the summary line)."""
    done = run("--demo", *args, subprocess=True)  # the in-process terminal reporter shows no progress times
    done.result.assert_outcomes(passed=16, failed=4)
    assert "INTERNALERROR" not in done.output, done.output[-3000:]
    assert re.search(shown, done.output, re.MULTILINE), done.output[-3000:]


def test_pytest_and_the_orchestrator_give_the_same_output(run: Any, tmp_path: Path) -> None:
    repo_a, input_a = build_demo(tmp_path / "a")
    repo_b, _ = build_demo(tmp_path / "b")
    by_class = BranchAlignmentOrchestrator(reports_dir=tmp_path / "orchestrator").run(input_a, repo_a)
    done = run("--input", str(input_a), "--repo", str(repo_b), "-n", "2")
    assert normalized(done.data) == normalized(by_class)
    orchestrator_audit = (tmp_path / "orchestrator" / "latest" / "audit.jsonl").read_text().splitlines()
    assert audit_shape(done.audit()) == audit_shape([json.loads(line) for line in orchestrator_audit])


def audit_shape(events: list[dict[str, Any]]) -> list[tuple[str, str, tuple[str, ...]]]:
    """Each audit record's event, branch and keys, in a stable order (branches finish in any order)."""
    return sorted((event["event"], event.get("branch", ""), tuple(sorted(event))) for event in events)


def normalized(data: dict[str, Any]) -> dict[str, Any]:
    """The output without what differs between any two runs: times, ids, paths, workers, merge commit ids."""
    varying = {
        "integration_time_seconds",
        "started_at",
        "finished_at",
        "worker",
        "new_tip",
        "changes_summary",
        "document",
    }
    groups = {
        target: {**group, "branches": [{k: v for k, v in b.items() if k not in varying} for b in group["branches"]]}
        for target, group in data["orchestration_results"].items()
    }
    summary = {
        k: v
        for k, v in data["overall_summary"].items()
        if k not in {"total_time_seconds", "execution_timestamp", "started_at"}
    }
    return {"orchestration_results": groups, "overall_summary": summary}


def test_selection_with_k_and_m(run: Any, demo: tuple[Path, Path, dict[str, str]]) -> None:
    repo, input_path, _ = demo
    only_login = run("--input", str(input_path), "--repo", str(repo), "-k", "login")
    only_login.result.assert_outcomes(passed=1)
    assert list(only_login.branches()) == ["feature/login"]
    assert only_login.data["overall_summary"]["total_not_run"] == 0
    scientific = run("--input", str(input_path), "--repo", str(repo), "-m", "target_scientific")
    scientific.result.assert_outcomes(passed=5, failed=1)
    assert list(scientific.data["orchestration_results"]) == ["scientific"]
    tools = run(
        "--input",
        str(input_path),
        "--repo",
        str(repo),
        "-m",
        "target_orchestration_tools",
        "--deselect",
        "alignment/test_branches.py::test_branch[ops/docker]",
    )
    tools.result.assert_outcomes(passed=4)


def test_a_non_ascii_branch_is_selected_by_its_escaped_test_id(run: Any, repo: Repo, tmp_path: Path) -> None:
    """pytest writes a non-ASCII character of a test id as its Python escape; the README says so, and these
    spellings are the ones it gives for ``-k`` and ``--deselect``."""
    names = ["feature/ünï", "docs/日本", "plain"]
    for name in names:
        repo.commit(name, {"f.txt": f"{name}\n"}, parent=repo.tip("main"))
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    escaped = {name: name.encode("unicode_escape").decode("ascii") for name in names}
    assert escaped["feature/ünï"] == "feature/\\xfcn\\xef"
    assert escaped["docs/日本"] == "docs/\\u65e5\\u672c"

    def collected(*selection: str) -> list[str]:
        done = run("--input", str(input_path), "--repo", str(repo.path), "--collect-only", "-q", *selection)
        return [line for line in done.result.outlines if line.startswith("alignment/test_branches.py::")]

    ids = [f"alignment/test_branches.py::test_branch[{escaped[name]}]" for name in names]
    assert collected() == ids
    assert collected("--deselect", ids[0], "--deselect", ids[1]) == ids[2:]
    assert collected("-k", escaped["feature/ünï"]) == ids[:1]
    assert collected("-k", "\\u65e5") == ids[1:2]
    assert collected("-k", "ünï") == []  # the name as typed matches nothing


def test_junit_xml_for_ci_dashboards(run: Any, demo: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    repo, input_path, _ = demo
    junit = tmp_path / "junit.xml"
    run("--input", str(input_path), "--repo", str(repo), f"--junitxml={junit}")
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("20", "4")


def test_a_component_bug_is_an_error_not_a_failure(run: Any, repo: Repo, tmp_path: Path) -> None:
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    old = repo.tip("feature")
    config = config_file(tmp_path, error_detector="tests.plugin.components:ExplodingDetector")
    input_path = write_input(tmp_path / "in.json", [entry("feature")])
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config))
    assert "1 error" in done.output
    assert done.result.ret == pytest.ExitCode.TESTS_FAILED
    branch = done.branches()["feature"]
    assert (branch["status"], branch["error_message"]) == ("exception", "RuntimeError: the detector has a bug")
    assert repo.tip("feature") == old


@pytest.mark.parametrize(
    ("key", "component", "said"),
    [
        ("error_detector", "NoneDetector", "detect() returned None"),
        ("doc_generator", "NumberDocGenerator", "document() returned 42"),
    ],
)
def test_a_component_returning_the_wrong_type_is_one_error_with_results_and_report(
    run: Any, repo: Repo, tmp_path: Path, key: str, component: str, said: str
) -> None:
    """Counted once (not a failure and an error), named in the results, and the controller writes its report."""
    old = repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    config = config_file(tmp_path, **{key: f"tests.plugin.components:{component}"})
    input_path = write_input(tmp_path / "in.json", [entry("feature")])
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config))
    assert re.search(r"^=+ 1 error in ", done.result.outlines[-1])
    assert done.result.ret == pytest.ExitCode.TESTS_FAILED
    branch = done.branches()["feature"]
    assert branch["status"] == "exception"
    assert branch["error_message"].startswith(f"{key} tests.plugin.components.{component}: {said}, expected ")
    assert (done.reports / "alignment_results.html").is_file()
    assert repo.tip("feature") == old


def test_a_component_that_warns_changes_no_outcome(run: Any, repo: Repo, tmp_path: Path) -> None:
    """A run keeps pytest's default warning filters, whatever the checkout's own tests use: a component's
    DeprecationWarning is shown in pytest's summary, an unclosed file is ignored; every branch is aligned."""
    old = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=repo.tip("main")) for name in ("a", "b")}
    repo.commit("main", {"m.txt": "m\n"})
    config = config_file(
        tmp_path,
        error_detector="tests.plugin.components:WarningDetector",
        doc_generator="tests.plugin.components:LeakingDocGenerator",
    )
    input_path = write_input(tmp_path / "in.json", [entry("a"), entry("b")])
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), subprocess=True)
    done.result.assert_outcomes(passed=2, warnings=2)
    assert "DeprecationWarning: an old API" in done.output
    assert {name: branch["status"] for name, branch in done.branches().items()} == {"a": "completed", "b": "completed"}
    assert all(repo.tip(name) != tip for name, tip in old.items())


@pytest.mark.parametrize("workers", [None, "2"])
def test_an_unclosed_file_under_w_error_is_a_warning_not_an_error_of_the_completed_branch(
    run: Any, repo: Repo, tmp_path: Path, workers: str | None
) -> None:
    """Under the user's ``-W error`` pytest raises a finalizer's ResourceWarning at the end of the branch's call:
    the branch, completed and moved, was an ERROR that ``--lf`` reran. Its outcome stands; pytest's warnings
    summary shows what was raised."""
    old = repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    config = config_file(tmp_path, doc_generator="tests.plugin.components:LeakingDocGenerator")
    input_path = write_input(tmp_path / "in.json", [entry("feature")])
    args = ("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), "-W", "error")
    done = run(*args, *(("-n", workers) if workers else ()), subprocess=True)
    done.result.assert_outcomes(passed=1, warnings=1)
    assert "ResourceWarning: unclosed file" in done.output
    assert "(raised where no step could catch it: the outcome stands)" in done.output
    assert done.branches()["feature"]["status"] == "completed"
    assert repo.tip("feature") != old
    tests = json.loads((done.reports / "latest" / "pytest-report.json").read_text())["tests"]
    assert [test["outcome"] for test in tests] == ["passed"]


def test_ctrl_c_reports_the_branch_in_flight_interrupted_and_the_rest_not_run(
    run: Any, repo: Repo, tmp_path: Path
) -> None:
    """README: a branch hit by Ctrl-C is reported ``interrupted`` (an error), never-started ones are skipped
    and ``not_run``, and pytest's counts, the JSON report and the results agree."""
    names = ["done", "ctrl-c", "later"]
    tips = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=repo.tip("main")) for name in names}
    repo.commit("main", {"m.txt": "m\n"})
    config = config_file(tmp_path, error_detector="tests.plugin.components:CtrlCDetector")
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), no_reraise_ctrlc=True)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    done.result.assert_outcomes(passed=1, errors=1, skipped=1)
    branches = done.branches()
    assert (branches["ctrl-c"]["status"], branches["ctrl-c"]["errors_detected"]) == ("exception", ["interrupted"])
    assert branches["ctrl-c"]["error_message"].startswith("alignment was interrupted (Ctrl-C) before it finished")
    assert (branches["ctrl-c"]["old_tip"], branches["ctrl-c"]["backup_branch"]) == (
        tips["ctrl-c"],
        "backup-ctrl-c-pre-align",
    )
    assert repo.tip("backup-ctrl-c-pre-align") == tips["ctrl-c"]
    assert branches["done"]["status"] == "completed"
    assert done.data["orchestration_results"]["main"]["not_run"] == ["later"]
    assert done.data["overall_summary"]["total_not_run"] == 1
    assert "3 branches: 1 aligned, 1 failed, 1 not run" in done.output
    assert (repo.tip("ctrl-c"), repo.tip("later")) == (tips["ctrl-c"], tips["later"])
    report = json.loads((done.reports / "latest" / "pytest-report.json").read_text())
    outcomes = {test["nodeid"].partition("[")[2][:-1]: test["outcome"] for test in report["tests"]}
    assert outcomes == {"done": "passed", "ctrl-c": "error", "later": "skipped"}
    events = [record["event"] for record in done.audit()]
    assert events.count("branch_start") == events.count("branch_end") == 2
    assert "run_interrupted" in events
    rerun = run("--input", str(input_path), "--repo", str(repo.path), "--lf")
    assert rerun.result.parseoutcomes()["passed"] == 2
    assert sorted(rerun.branches()) == ["ctrl-c", "later"]


@pytest.mark.parametrize("strategy", ["merge", "rebase"])
def test_ctrl_c_after_a_branch_s_call_passed_reports_it_completed_once(
    run: Any, repo: Repo, tmp_path: Path, strategy: str
) -> None:
    """README: a branch whose steps had ended when Ctrl-C came (its call passed, its teardown report never came)
    is reported ``completed`` at its journaled tips, not put back, and pytest counts it once, as passed."""
    tips = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=repo.tip("main")) for name in ("late", "later")}
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry("late"), entry("later")])
    config = config_file(tmp_path, integration_strategy=strategy)
    args = (
        "--input",
        str(input_path),
        "--repo",
        str(repo.path),
        "--config",
        str(config),
        "-p",
        "tests.plugin.late_ctrl_c",
    )
    done = run(*args, no_reraise_ctrlc=True)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    done.result.assert_outcomes(passed=1, skipped=1)
    late = done.branches()["late"]
    assert (late["status"], late["old_tip"], late["action"]) == ("completed", tips["late"], strategy)
    assert repo.tip("late") == late["new_tip"] != tips["late"]
    assert (late["backup_branch"], Path(late["document"]).is_file()) == ("backup-late-pre-align", True)
    assert repo.tip("later") == tips["later"]
    report = json.loads((done.reports / "latest" / "pytest-report.json").read_text())
    assert [test["outcome"] for test in report["tests"]] == ["passed", "skipped"]


def pushed_to_origin(repo: Repo, tmp_path: Path) -> tuple[str, str]:
    """The branch ``pushed`` (``tests.plugin.pushed_then_ctrl_c``) forked from ``main``, which then moved on, both
    pushed to a bare remote ``origin``: its old tip and the target's."""
    old_tip = repo.commit("pushed", {"pushed.txt": "x\n"}, parent=repo.tip("main"))
    merged = repo.commit("main", {"m.txt": "m\n"})
    bare = tmp_path / "remote.git"
    repo.git("init", "-q", "--bare", str(bare))
    repo.git("push", "-q", str(bare), "refs/heads/*:refs/heads/*")
    repo.git("remote", "add", "origin", str(bare))
    return old_tip, merged


@pytest.mark.parametrize("phase", ["call", "setup"])
def test_ctrl_c_after_a_journaled_push_reports_it_push_failed_as_one_that_may_have_landed(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    """README: a push journaled in the run's folder (by a worker in a clone of its own, ``--worker-clones``) was
    journaled before ``git push`` ran, so after Ctrl-C with no word of it from its worker, its branch (its start
    heard by the controller or not: the remote may be at the merge) is ``push_failed``, a push that may have
    landed; the controller neither restores the local branch from it nor journals it as put back by the run
    (``alignment runs`` and ``alignment undo`` still count it)."""
    old_tip, merged = pushed_to_origin(repo, tmp_path)
    input_path = write_input(tmp_path / "in.json", [entry("pushed")])
    monkeypatch.setenv("ALIGNMENT_TEST_PUSHED_AT", phase)
    monkeypatch.setenv("ALIGNMENT_TEST_PUSHED_TIP", merged)
    args = ("--input", str(input_path), "--repo", str(repo.path), "--remote", "origin")
    done = run(*args, "-p", "tests.plugin.pushed_then_ctrl_c", no_reraise_ctrlc=True)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    pushed = done.branches()["pushed"]
    assert (pushed["status"], pushed["errors_detected"]) == ("failed_integration", ["push_failed"]), pushed
    assert pushed["old_tip"] == old_tip
    assert (pushed["push"]["pushed"], pushed["push"]["aligned_ref"]) == (False, "refs/alignment/aligned/origin/pushed")
    message = pushed["error_message"]
    assert "ended before it reported its push" in message
    assert f"at its old tip {old_tip} or at the merge {merged}" in message
    assert "`alignment undo RUN_ID` puts it back if it landed" in message
    assert repo.tip("pushed") == old_tip
    moves = MoveJournal(RunFolder(done.reports, done.data["run_id"]).moves_dir).moves()
    assert [(move.branch, move.remote, move.put_back) for move in moves] == [("pushed", "origin", None)]
    assert "Traceback" not in done.output


def test_ctrl_c_while_the_workers_end_publishes_the_results(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: Ctrl-C while the controller ends its xdist workers (every branch finished) gives the results as
    usual, the audit trail records ``run_interrupted`` and the exit code is 2, not a traceback."""
    tips = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=repo.tip("main")) for name in ("a", "b")}
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry("a"), entry("b")])
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # so that -p finds tests.plugin.ctrl_c_ending_workers
    args = ("--input", str(input_path), "--repo", str(repo.path), "-n", "2", "-p", "tests.plugin.ctrl_c_ending_workers")
    done = run(*args)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    done.result.assert_outcomes(passed=2)
    branches = done.branches()
    assert {name: branches[name]["status"] for name in tips} == {"a": "completed", "b": "completed"}
    assert {name: repo.tip(name) for name in tips} == {name: branches[name]["new_tip"] for name in tips}
    assert "run_interrupted" in [record["event"] for record in done.audit()]
    assert "Traceback" not in done.output


@pytest.mark.parametrize(
    ("when", "workers"),
    [("starting", ("-n", "2")), ("collecting", ("-n", "2")), ("alone", ())],
    ids=["workers-starting", "workers-collecting", "collecting-alone"],
)
def test_ctrl_c_before_any_branch_started_makes_no_run(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str, workers: tuple[str, ...]
) -> None:
    """README: Ctrl-C while xdist's workers start or collect, or while a run without them collects (no branch
    started), makes no run: no folder, and ``latest``, the results and ``--lf``'s list stay as the last run left
    them; exit code 2, no traceback."""
    base = repo.tip("main")
    repo.commit("ok", {"ok.txt": "x\n"}, parent=base)
    repo.commit("bad", {"app.py": "mine\n"}, parent=base)
    repo.commit("main", {"app.py": "theirs\n"})
    input_path = write_input(tmp_path / "in.json", [entry("ok"), entry("bad")])
    args = ("--input", str(input_path), "--repo", str(repo.path))
    first = run(*args)
    first.result.assert_outcomes(passed=1, failed=1)
    results, refs = first.data, repo.git("for-each-ref")
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # so that -p finds tests.plugin.ctrl_c_collecting
    monkeypatch.setenv("CTRL_C_WHEN", when)
    monkeypatch.setenv("CTRL_C_FLAG", str(tmp_path / "ctrl-c"))
    done = run(*args, *workers, "-p", "tests.plugin.ctrl_c_collecting", no_reraise_ctrlc=True)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    assert "Traceback" not in done.output
    summary = "branch alignment: interrupted (Ctrl-C) before any branch started: no run was made and nothing moved"
    assert (summary in done.output) is (when != "starting")  # no summary after a Ctrl-C at session start
    assert done.data == results
    assert [path.name for path in (done.reports / "runs").iterdir()] == [results["run_id"]]
    assert (done.reports / "latest").resolve().name == results["run_id"]
    assert repo.git("for-each-ref") == refs
    rerun = run(*args, "--lf")
    assert sorted(rerun.branches()) == ["bad"]


@pytest.mark.parametrize("workers", [None, "2"])
def test_control_characters_in_paths_are_printed_escaped(
    run: Any, repo: Repo, tmp_path: Path, workers: str | None
) -> None:
    """A path or note holding a terminal escape sequence (set the title, clear the screen) is shown, not run."""
    title = "t\x1b]0;pwned\x07.txt"
    repo.commit("feature", {title: "ours\n"}, parent=repo.tip("main"))
    repo.commit("main", {title: "theirs\n"})
    (repo.path / ".git" / "refs" / "heads" / "stuck\x1b[2J.lock").write_text("")
    input_path = write_input(tmp_path / "in.json", [entry("feature")])
    done = run("--input", str(input_path), "--repo", str(repo.path), *(("-n", workers) if workers else ()))
    assert done.branches()["feature"]["error_message"] == f"Merge conflict in {title} (unresolvable)"
    assert "\x1b" not in done.output
    assert "\x07" not in done.output
    assert "\nMerge conflict in t\\x1b]0;pwned\\x07.txt (unresolvable)\n" in done.output
    assert "stuck\\x1b[2J.lock exists" in done.output
    log = (done.reports / "latest" / "logs" / "feature.log").read_text(encoding="utf-8")
    assert "failed: Merge conflict in t\\x1b]0;pwned\\x07.txt (unresolvable)\n" in log


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda p: [], "pytest alignment/ needs --input FILE and --repo PATH (or --demo)"),
        (lambda p: ["--input", str(p / "missing.json"), "--repo", str(p)], "missing.json: file not found"),
        (
            lambda p: ["--input", str(p / "bad.json"), "--repo", str(p / "repo")],
            "bad.json: line 1, column 2: invalid JSON",
        ),
        (lambda p: ["--input", str(p / "in.json")], "--repo PATH is required"),
        (lambda p: ["--input", str(p / "in.json"), "--repo", str(p)], "not a git repository"),
        (
            lambda p: ["--input", str(p / "in.json"), "--repo", str(p / "repo"), "--config", str(p / "typo.yaml")],
            "typo.yaml: orchestration.max_workers: unknown key (did you mean max_workers_per_target?)",
        ),
    ],
)
def test_bad_options_are_one_clear_line_and_change_nothing(
    run: Any, repo: Repo, tmp_path: Path, make_args: Any, message: str
) -> None:
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    (tmp_path / "typo.yaml").write_text("orchestration:\n  max_workers: 2\n", encoding="utf-8")
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    write_input(tmp_path / "in.json", [entry("feature")])
    refs_before = repo.git("for-each-ref")
    done = run(*make_args(tmp_path))
    assert done.result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in done.result.errlines if line.startswith("ERROR")]
    assert len(errors) == 1
    assert message in errors[0]
    assert repo.git("for-each-ref") == refs_before


def _nested_entry(path: Path) -> None:
    text = json.dumps({"branches": [entry("feature", notes="DEEP")]})
    # json loads 100 levels; near 975 it still did, and saving the run's copy of the input overflowed the stack
    path.write_text(text.replace('"DEEP"', "[" * 100 + "]" * 100), encoding="utf-8")


@pytest.mark.parametrize(
    ("make_input_file", "message"),
    [
        (lambda path: path.symlink_to("/dev/zero"), "is a device or other special file; expected a regular JSON file"),
        (os.mkfifo, "is a named pipe (FIFO); expected a regular JSON file"),
        (_nested_entry, "branches[0]: nested more than 64 levels deep"),
    ],
    ids=["dev-zero", "fifo", "nested"],
)
def test_input_files_that_would_crash_or_hang_are_one_error_and_leave_no_run(
    run: Any, repo: Repo, tmp_path: Path, make_input_file: Any, message: str
) -> None:
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    input_path = tmp_path / "in.json"
    make_input_file(input_path)
    refs_before = repo.git("for-each-ref")
    done = run("--input", str(input_path), "--repo", str(repo.path))
    assert done.result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in done.result.errlines if line.startswith("ERROR")]
    assert errors == [f"ERROR: {input_path}: {message}"]
    assert repo.git("for-each-ref") == refs_before
    assert not (done.reports / "runs").exists()


def test_without_input_the_branch_module_is_not_collected(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess(
        str(PROJECT), "--ignore", str(PROJECT / "tests"), "--ignore", str(PROJECT / "bench"), "--co", "-q"
    )
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_ini_twins_of_the_options(run: Any, demo: tuple[Path, Path, dict[str, str]]) -> None:
    repo, input_path, _ = demo
    done = run("-o", f"alignment_input={input_path}", "-o", f"alignment_repo={repo}", "-k", "metrics")
    done.result.assert_outcomes(passed=1)


def test_path_options_as_separate_arguments_reach_workers_in_another_directory(
    pytester: pytest.Pytester, repo: Repo, tmp_path: Path
) -> None:
    """xdist rewrites each argument that names an existing path for a worker started in another directory
    (``--tx popen//chdir=``, ssh): ``--input PATH`` (the path alone an argument) stopped the run with an
    INTERNALERROR, as the path is outside xdist's rsync roots."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry("feature")])
    (tmp_path / "workers").mkdir()
    result = pytester.runpytest_subprocess(
        "-p", "plugins.alignment_plugin", "--pyargs", "alignment.test_branches", "-o", f"cache_dir={tmp_path / 'c'}",
        "--input", str(input_path), "--repo", str(repo.path), "--reports-dir", str(tmp_path / "reports"),
        "--tx", f"2*popen//chdir={tmp_path / 'workers'}", "--dist", "load", timeout=300,
    )  # fmt: skip
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    assert repo.git("merge-base", "main", "feature") == repo.tip("main")


def conflicting_repo(repo: Repo, clean: int, conflicting: int) -> list[str]:
    """``clean`` branches that merge, then ``conflicting`` branches that conflict with main."""
    base = repo.tip("main")
    names = [
        repo.commit(f"ok-{index}", {f"ok-{index}.txt": "x\n"}, parent=base) and f"ok-{index}" for index in range(clean)
    ]
    names += [
        repo.commit(f"bad-{index}", {"app.py": f"mine {index}\n"}, parent=base) and f"bad-{index}"
        for index in range(conflicting)
    ]
    repo.commit("main", {"app.py": "theirs\n"})
    return names


def test_breaker_trips_under_xdist_and_lf_reruns_failed_and_never_started(run: Any, repo: Repo, tmp_path: Path) -> None:
    names = conflicting_repo(repo, clean=4, conflicting=10)
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    config = config_file(tmp_path, failure_threshold_count=3, failure_threshold_percent=40)
    first = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), "-n", "2")
    assert first.result.ret == pytest.ExitCode.INTERRUPTED
    assert "circuit breaker tripped" in first.output
    summary = first.data["overall_summary"]
    assert summary["circuit_breaker_triggered"] is True
    assert summary["total_not_run"] > 0
    not_run = set(first.data["orchestration_results"]["main"]["not_run"])
    failed = {name for name, branch in first.branches().items() if branch["status"] != "completed"}
    clean = {"ok-0", "ok-1", "ok-2", "ok-3"}
    passed = set(first.branches()) - failed
    assert passed <= clean
    assert passed | failed | not_run == set(names)
    (trip,) = [event for event in first.audit() if event["event"] == "circuit_breaker_tripped"]
    tripped_at = parse_iso_utc(trip["time"])  # logged after the stop flag was written
    for branch in first.branches().values():
        assert parse_iso_utc(branch["started_at"]) <= tripped_at, branch["branch_name"]
    for name in not_run:
        assert not repo.exists(f"backup-{name}-pre-align")

    relaxed = config_file(tmp_path, enable_circuit_breaker=False)
    second = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(relaxed), "-n", "2", "--lf")
    assert set(second.branches()) == failed | not_run
    rerun_clean = not_run & clean
    second.result.assert_outcomes(passed=len(rerun_clean), failed=len((failed | not_run) - rerun_clean))


def test_lf_reruns_cut_short_by_the_breaker_try_the_least_recently_tried_first(
    run: Any, repo: Repo, tmp_path: Path
) -> None:
    """README: a rerun starts with the branches tried least recently (never tried, then by the run that last
    tried them), so rerun after rerun, each cut short by the breaker, every failed branch gets its turn: none
    is tried twice before all are tried once, then round again."""
    names = conflicting_repo(repo, clean=0, conflicting=8)
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    config = config_file(tmp_path, failure_threshold_count=2, failure_threshold_percent=50)
    args = ("--input", str(input_path), "--repo", str(repo.path), "--config", str(config))
    tried = [list(run(*args).branches())]
    tried += [list(run(*args, "--lf").branches()) for _ in range(3)]  # ceil(8 branches / 2 a run) runs in all
    assert [len(one_run) for one_run in tried] == [2, 2, 2, 2]
    assert sorted(name for one_run in tried for name in one_run) == sorted(names)
    assert list(run(*args, "--lf").branches()) == tried[0]


def test_lf_reruns_under_xdist_with_one_worker_per_target_try_the_least_recently_tried_first(
    run: Any, repo: Repo, tmp_path: Path
) -> None:
    """As above with ``-n 2`` and ``max_workers_per_target: 1`` (README, "Rerun failures"): the worker that may
    run the target takes its next branch in the rerun's order, never one from the end (the last run's failures,
    which tripped the breaker again before the others had their turn). A trip stops two or three branches in."""
    names = conflicting_repo(repo, clean=0, conflicting=8)
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    config = config_file(tmp_path, failure_threshold_count=2, failure_threshold_percent=50, max_workers_per_target=1)
    args = ("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), "-n", "2")
    last_run: dict[str, int] = {}  # the run that last tried each branch
    for number in range(4):  # at least 2 tried a run: every branch within 4 runs
        tried = set(run(*args, *(("--lf",) if number else ())).branches())
        passed_over = [last_run.get(name, -1) for name in names if name not in tried]
        assert max(last_run.get(name, -1) for name in tried) <= min(passed_over, default=number), (number, tried)
        last_run.update(dict.fromkeys(tried, number))
    assert set(last_run) == set(names)


def test_breaker_without_xdist_stops_before_the_next_branch(run: Any, repo: Repo, tmp_path: Path) -> None:
    names = conflicting_repo(repo, clean=0, conflicting=6)
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    config = config_file(tmp_path, failure_threshold_count=2, failure_threshold_percent=50)
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config))
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    assert done.data["orchestration_results"]["main"]["not_run"] == ["bad-2", "bad-3", "bad-4", "bad-5"]


def test_per_target_worker_limit_is_respected(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.branch("second", "main")
    repo.commit("second", {"s.txt": "s\n"})
    base = repo.tip("main")
    entries = []
    for index in range(6):
        for target in ("main", "second"):
            name = f"{target}-{index}"
            repo.commit(name, {f"{name}.txt": "x\n"}, parent=base)
            entries.append(entry(name, target))
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", entries)
    config = config_file(
        tmp_path,
        max_workers_per_target=1,
        targets={"second": {"max_workers": 2}},
        integration_utility="tests.plugin.components:MeetingIntegrator",
    )
    monkeypatch.setenv("ALIGNMENT_TEST_SLEEP", ":0.8")
    (tmp_path / "met").mkdir()  # the first two "second" branches wait for each other: their overlap is certain
    monkeypatch.setenv("ALIGNMENT_TEST_MEET", f"second:2:{tmp_path / 'met'}")
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), "-n", "3")
    done.result.assert_outcomes(passed=12)
    spans: dict[str, list[tuple[float, float]]] = {"main": [], "second": []}
    for branch in done.branches().values():
        span = (parse_iso_utc(branch["started_at"]), parse_iso_utc(branch["finished_at"]))
        spans[branch["target_branch"]].append(span)
    assert max_overlap(spans["main"]) == 1
    assert max_overlap(spans["second"]) == 2


@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_killed_worker_is_reported_and_its_branch_put_back(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    base = repo.tip("main")
    names = [f"topic-{index}" for index in range(4)]
    olds = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=base) for name in names}
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in names])
    monkeypatch.setenv("ALIGNMENT_TEST_KILL", f"topic-1:{moment}")
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # so that -p finds tests.plugin.crash_plugin
    done = run("--input", str(input_path), "--repo", str(repo.path), "-n", "2", "-p", "tests.plugin.crash_plugin")
    victim = done.branches()["topic-1"]
    assert (victim["status"], victim["errors_detected"]) == ("exception", ["worker_crashed"])
    expected_note = (
        f"restored 'topic-1' to its old tip {olds['topic-1']}" if moment == "after" else "'topic-1' was not moved"
    )
    assert re.fullmatch(
        r"worker 'gw[01]' crashed while running 'alignment/test_branches\.py::test_branch\[topic-1\]'; "
        + re.escape(expected_note),
        victim["error_message"],
    ), victim["error_message"]
    assert repo.tip("topic-1") == olds["topic-1"]
    assert repo.tip("backup-topic-1-pre-align") == olds["topic-1"]
    if moment == "after":  # the reflog, change document and log say who put it back
        put_back = repo.git("reflog", "show", "-1", "--format=%gs", "topic-1")
        assert put_back == f"branch-alignment run {done.data['run_id']}: put back"
        assert_documented_put_back(done, "topic-1")
    assert moves_made(RunFolder(done.reports, done.data["run_id"])) == 3  # `alignment runs`: topic-1 is put back
    for name in ("topic-0", "topic-2", "topic-3"):
        assert done.branches()[name]["status"] == "completed"
    assert len(repo.git("worktree", "list").splitlines()) == 1
    assert list((tmp_path / "tmp").glob("alignment-*")) == []  # the killed worker's files went with the run


def test_a_killed_worker_s_branch_moved_again_since_is_documented_as_left_where_it_is(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A branch the controller cannot put back (moved again since its worker died) still has its change document
    say ``exception`` and why, and its log end with that; its new tip row stays the merge, as nothing put it back."""
    repo.commit("topic", {"topic.txt": "x\n"}, parent=repo.tip("main"))
    target = repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry("topic")])
    monkeypatch.setenv("ALIGNMENT_TEST_KILL", "topic:moved")
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # so that -p finds tests.plugin.crash_plugin
    done = run("--input", str(input_path), "--repo", str(repo.path), "-n", "1", "-p", "tests.plugin.crash_plugin")
    result = done.branches()["topic"]
    assert (result["status"], repo.tip("topic")) == ("exception", target)
    assert result["error_message"].endswith(f"'topic' moved again since (now at {target}); left as it is")
    text = Path(result["document"]).read_text(encoding="utf-8")
    assert "**Status:** exception (merge)" in text
    assert "put back" not in text
    assert f"{target}\\); left as it is\n" in text  # why it stopped (Markdown-escaped)
    log = (done.reports / "latest" / "logs" / "topic.log").read_text(encoding="utf-8").splitlines()
    assert log[-1].endswith(result["error_message"]), log[-1]


def test_a_killed_workers_branch_names_its_backup_past_a_folder_of_another_listed_backup(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``backup-a-pre-align`` is a folder of ``a-pre-align/b``'s backup name: ``a``'s backup is ``-2``, and the
    controller, making the result of ``a``'s crashed worker, finds it there."""
    base = repo.tip("main")
    olds = {name: repo.commit(name, {"x.txt": name}, parent=base) for name in ("a", "a-pre-align/b")}
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in olds])
    monkeypatch.setenv("ALIGNMENT_TEST_KILL", "a:before")
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # so that -p finds tests.plugin.crash_plugin
    done = run("--input", str(input_path), "--repo", str(repo.path), "-n", "2", "-p", "tests.plugin.crash_plugin")
    victim = done.branches()["a"]
    assert (victim["status"], victim["errors_detected"]) == ("exception", ["worker_crashed"])
    assert victim["backup_branch"] == "backup-a-pre-align-2"
    assert repo.tip("backup-a-pre-align-2") == olds["a"]


def seconds_taken(branch: dict[str, Any]) -> float:
    return parse_iso_utc(branch["finished_at"]) - parse_iso_utc(branch["started_at"])


def test_a_timed_out_branch_is_rolled_back_and_reported(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = repo.tip("main")
    slow = repo.commit("slow", {"s.txt": "s\n"}, parent=base)
    repo.commit("quick", {"q.txt": "q\n"}, parent=base)
    repo.commit("main", {"m.txt": "m\n"})
    config = config_file(
        tmp_path, branch_alignment_timeout_seconds=5, integration_utility="tests.plugin.components:SlowIntegrator"
    )  # the quick branch has the same limit: room for it on a busy machine
    monkeypatch.setenv("ALIGNMENT_TEST_SLEEP", "slow:60")
    input_path = write_input(tmp_path / "in.json", [entry("slow"), entry("quick")])
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), subprocess=True)
    done.result.assert_outcomes(passed=1, failed=1)
    result = done.branches()["slow"]
    assert (result["status"], result["errors_detected"]) == ("failed_integration", ["timeout"])
    assert seconds_taken(result) < 30, "the timeout's signal did not stop its 60 s wait"
    assert repo.tip("slow") == slow
    assert "branch alignment timed out after 5 s" in done.output


def test_a_timeout_where_no_line_number_is_known_is_the_branchs_result_and_the_run_goes_on(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest could not format the timeout's traceback and stopped the run with an INTERNALERROR."""
    base = repo.tip("main")
    olds = {name: repo.commit(name, {f"{name}.txt": "x\n"}, parent=base) for name in ("quick-1", "slow", "quick-2")}
    repo.commit("main", {"m.txt": "m\n"})
    config = config_file(
        tmp_path,
        branch_alignment_timeout_seconds=5,  # the quick branches have the same limit: room for them on a busy machine
        integration_utility="tests.plugin.components:NoLineNumberIntegrator",
    )
    monkeypatch.setenv("ALIGNMENT_TEST_SLEEP", "slow:60")
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in olds])
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), subprocess=True)
    assert "INTERNALERROR" not in done.output
    done.result.assert_outcomes(passed=2, failed=1)
    results = done.branches()
    assert (results["slow"]["status"], results["slow"]["errors_detected"]) == ("failed_integration", ["timeout"])
    assert seconds_taken(results["slow"]) < 30, "the timeout's signal did not stop its 60 s wait"
    assert [results[name]["status"] for name in ("quick-1", "quick-2")] == ["completed", "completed"]
    assert done.data["overall_summary"]["total_not_run"] == 0
    assert repo.tip("slow") == olds["slow"]
    assert "branch alignment timed out after 5 s" in done.output


def test_an_earlier_runs_reports_are_kept(run: Any, demo: tuple[Path, Path, dict[str, str]]) -> None:
    repo, input_path, _ = demo
    first = run("--input", str(input_path), "--repo", str(repo), "-k", "login")
    first_id = first.data["run_id"]
    second = run("--input", str(input_path), "--repo", str(repo), "-k", "metrics")
    assert second.data["run_id"] != first_id
    kept = json.loads((first.reports / "runs" / first_id / "alignment_results.json").read_text())
    assert next(iter(kept["orchestration_results"]["main"]["branches"][0].values())) == "feature/login"
    assert (second.reports / "latest").resolve().name == second.data["run_id"]
    assert os.path.exists(second.reports / "runs" / first_id / "pytest-report.json")


def test_parallelization_off_means_one_branch_at_a_time_over_all_targets(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.branch("second", "main")
    base = repo.tip("main")
    entries = []
    for index in range(3):
        for target in ("main", "second"):
            repo.commit(f"{target}-{index}", {f"{target}-{index}.txt": "x\n"}, parent=base)
            entries.append(entry(f"{target}-{index}", target))
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", entries)
    config = config_file(
        tmp_path, enable_parallelization=False, integration_utility="tests.plugin.components:SlowIntegrator"
    )
    monkeypatch.setenv("ALIGNMENT_TEST_SLEEP", ":0.2")
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), "-n", "2")
    done.result.assert_outcomes(passed=6)
    spans = [(parse_iso_utc(b["started_at"]), parse_iso_utc(b["finished_at"])) for b in done.branches().values()]
    assert max_overlap(spans) == 1


def test_a_small_run_uses_every_worker(run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = repo.tip("main")
    for index in range(4):
        repo.commit(f"topic-{index}", {f"t{index}.txt": "t\n"}, parent=base)
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry(f"topic-{index}") for index in range(4)])
    config = config_file(tmp_path, integration_utility="tests.plugin.components:SlowIntegrator")
    monkeypatch.setenv("ALIGNMENT_TEST_SLEEP", ":0.3")
    done = run("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), "-n", "2")
    done.result.assert_outcomes(passed=4)
    workers = [branch["worker"] for branch in done.branches().values()]
    assert sorted(workers) == ["gw0", "gw0", "gw1", "gw1"]


@pytest.mark.parametrize("workers", [None, "2"])
def test_plan_flag_predicts_moves_nothing_and_leaves_lf_alone(
    run: Any, demo: tuple[Path, Path, dict[str, str]], workers: str | None
) -> None:
    repo, input_path, expected = demo
    extra = ("-n", workers) if workers else ()
    first = run("--input", str(input_path), "--repo", str(repo), "-k", "feature/auth or feature/login", *extra)
    first.result.assert_outcomes(passed=1, failed=1)
    refs = Repo(repo).git("for-each-ref", "--format=%(refname) %(objectname)")

    planned = run("--input", str(input_path), "--repo", str(repo), "--plan", *extra)

    planned.result.assert_outcomes(passed=16, failed=4)
    assert planned.result.ret == pytest.ExitCode.TESTS_FAILED
    plan = json.loads((planned.reports / "alignment_plan.json").read_text())
    jsonschema.validate(plan, load_schema())
    assert plan["planned"] is True
    statuses = {
        b["branch_name"]: b["status"] for group in plan["orchestration_results"].values() for b in group["branches"]
    }
    assert statuses == expected
    matrix = plan["orchestration_results"]["orchestration-tools"]["conflict_matrix"]
    assert matrix["conflicts"] == [{"branches": ["ops/docker", "ops/monitoring"], "paths": ["tools/versions.toml"]}]
    assert "branch alignment plan" in planned.output
    assert (
        "20 branches: 16 would align, 4 would fail, 0 not run; 3 conflicts, 3 with their cause named" in planned.output
    )
    assert "alignment_plan.html" in planned.output
    assert Repo(repo).git("for-each-ref", "--format=%(refname) %(objectname)") == refs, "a plan moves nothing"

    rerun = run("--input", str(input_path), "--repo", str(repo), "--lf", *extra)
    rerun.result.assert_outcomes(failed=1)
    assert list(rerun.branches()) == ["feature/auth"], "--lf reruns what the last real run left failed"


def test_ctrl_c_to_the_controller_alone_starts_no_further_branch_and_reports_every_moved_one(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: no further branch starts after Ctrl-C. Sent to the controller alone (not to its workers), it
    left the workers aligning the branches queued on them until xdist ended them, unheard: those moved and
    were reported ``not_run``. Now none starts after the Ctrl-C but those already running (at most one per
    worker), and one whose start the controller never heard is put back from the journal and ``interrupted``."""
    base = repo.tip("main")
    olds = {f"topic-{i}": repo.commit(f"topic-{i}", {f"t{i}.txt": "x\n"}, parent=base) for i in range(16)}
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry(name) for name in olds])
    config = config_file(tmp_path, integration_utility="tests.plugin.components:MeetingIntegrator")
    (tmp_path / "integrating").mkdir()
    monkeypatch.setenv("ALIGNMENT_TEST_MEET", f"topic-:1:{tmp_path / 'integrating'}")  # one: none waits
    monkeypatch.setenv("ALIGNMENT_TEST_SLEEP", ":1")
    monkeypatch.setenv("PYTHONPATH", str(PROJECT))  # so that -p finds tests.plugin.ctrl_c_controller
    args = ("--input", str(input_path), "--repo", str(repo.path), "--config", str(config), "-n", "2")
    done = run(*args, "-p", "tests.plugin.ctrl_c_controller")
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    branches, not_run = done.branches(), done.data["orchestration_results"]["main"]["not_run"]
    moved = {name: repo.tip(name) for name, old in olds.items() if repo.tip(name) != old}
    reported = {name: (branches[name]["status"], branches[name]["new_tip"]) for name in moved if name in branches}
    assert reported == {name: ("completed", tip) for name, tip in moved.items()}
    for name in not_run:
        assert (repo.tip(name), repo.exists(f"backup-{name}-pre-align")) == (olds[name], False), name
    started = [name for name in olds if repo.exists(f"backup-{name}-pre-align")]
    assert len(started) <= 4, f"started: {started}"  # the first to end, one unheard, at most two running
    put_back = {name: branches[name]["errors_detected"] for name in started if name not in moved}
    assert put_back, "the branch the controller never heard start is put back"
    assert put_back == {name: ["interrupted"] for name in put_back}
    for name in put_back:
        assert_documented_put_back(done, name)
    assert "Traceback" not in done.output


def assert_documented_put_back(done: Any, branch: str) -> None:
    """The change document of ``branch``, which the controller put back after it moved, and its log say so."""
    result = done.branches()[branch]
    text = Path(result["document"]).read_text(encoding="utf-8")
    assert "**Status:** exception (merge)" in text
    assert "(put back: the branch is at its old tip again) |" in text
    assert f"to its old tip {result['old_tip']}\n" in text  # why it stopped
    log = (done.reports / "latest" / "logs" / f"{branch}.log").read_text(encoding="utf-8").splitlines()
    assert log[-1].endswith(f"{result['error_message']}"), log[-1]


def test_lf_without_a_failure_to_rerun_says_so_under_q(run: Any, repo: Repo, tmp_path: Path) -> None:
    """README: ``--lf`` in a fresh CI job (nothing in pytest's cache for this input and repository) reruns every
    branch; pytest's own line says so only in the header ``-q`` drops, so the summary's notes say why, and
    tell it apart from a last run that left nothing to rerun."""
    base = repo.tip("main")
    for name in ("a", "b"):
        repo.commit(name, {f"{name}.txt": "x\n"}, parent=base)
    repo.commit("main", {"m.txt": "m\n"})
    input_path = write_input(tmp_path / "in.json", [entry("a"), entry("b")])
    args = ("--input", str(input_path), "--repo", str(repo.path), "-q")
    fresh = run(*args, "--lf")
    fresh.result.assert_outcomes(passed=2)
    cache = tmp_path / "cache"
    assert (
        f"note: --lf: pytest's cache ({cache}) has no earlier run with this input and repository, so every branch "
        "ran" in fresh.output
    )
    again = run(*args, "--lf")
    again.result.assert_outcomes(passed=2)
    assert (
        "note: --lf: the last run with this input and repository left no branch failed or not run, so every "
        "branch ran" in again.output
    )
    assert "note: --lf" not in run(*args).output


def test_ctrl_c_in_the_teardown_of_a_worker_clone_s_branch_reports_it_not_pushed(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: under ``--worker-clones`` a branch whose call passed but whose teardown Ctrl-C cut short, with no
    push journaled, was never pushed (its worker pushes only the branches whose teardown ended): it is
    ``push_failed``, "not pushed: interrupted (Ctrl-C) before its push", not ``completed``; the remote and the
    local branch stay at its old tip, its change document says so, and ``--lf`` reruns it."""
    old_tip, _ = pushed_to_origin(repo, tmp_path)
    repo.git("push", "-q", "origin", "main:refs/heads/current")  # up to date with main: it needs no push
    input_path = write_input(tmp_path / "in.json", [entry("current"), entry("pushed")])
    monkeypatch.setenv("ALIGNMENT_TEST_PUSHED_AT", "teardown")
    args = ("--input", str(input_path), "--repo", str(repo.path), "--remote", "origin")
    done = run(*args, "-p", "tests.plugin.pushed_then_ctrl_c", no_reraise_ctrlc=True)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    branches = done.branches()
    assert branches["current"]["status"] == "completed"
    pushed = branches["pushed"]
    assert (pushed["status"], pushed["errors_detected"]) == ("failed_integration", ["push_failed"]), pushed
    assert pushed["error_message"].startswith("not pushed: interrupted (Ctrl-C) before its push; this run did not")
    assert (pushed["old_tip"], pushed["push"]["pushed"]) == (old_tip, False)
    assert repo.tip("pushed") == repo.git("ls-remote", "origin", "refs/heads/pushed").split()[0] == old_tip
    document = Path(pushed["document"]).read_text(encoding="utf-8")
    assert "**Status:** failed_integration" in document
    assert "not pushed to `origin` (push_failed)" in document
    rerun = run(*args, "--lf")
    assert sorted(rerun.branches()) == ["pushed"]


def test_ctrl_c_in_the_teardown_of_a_remote_runs_branch_still_pushes_what_its_steps_aligned(
    run: Any, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: a branch whose call passed but whose teardown Ctrl-C cut short had ended its steps. In a plain
    ``--remote`` run they left its merge at ``push.aligned_ref``, and the controller pushes at the end of the run:
    it was reported ``completed`` with no push record, so it was never pushed and the remote stayed at its old
    tip. Now it is pushed with the others (with its lease on the fetched tip)."""
    old_tip, merged = pushed_to_origin(repo, tmp_path)
    input_path = write_input(tmp_path / "in.json", [entry("pushed")])
    monkeypatch.setenv("ALIGNMENT_TEST_PUSHED_AT", "teardown")
    monkeypatch.setenv("ALIGNMENT_TEST_WORKER_CLONES", "0")
    args = ("--input", str(input_path), "--repo", str(repo.path), "--remote", "origin")
    done = run(*args, "-p", "tests.plugin.pushed_then_ctrl_c", no_reraise_ctrlc=True)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    pushed = done.branches()["pushed"]
    assert (pushed["status"], pushed["push"]["pushed"]) == ("completed", True), pushed
    on_remote = repo.git("ls-remote", "origin", "refs/heads/pushed").split()[0]
    assert on_remote == pushed["new_tip"]
    assert repo.git("rev-list", "--parents", "-1", on_remote).split()[1:] == [old_tip, merged]
