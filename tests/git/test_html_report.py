"""The HTML report, rendered by a real headless Chromium: what a reader sees on the page.

Chromium comes from the OS packages (``.ci/run`` installs it and sets ``ALIGNMENT_REQUIRE_BROWSER=1``, so
CI cannot skip these tests). ``--dump-dom`` prints the page after its script ran; the checks read that DOM.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from alignment.demo import build_demo
from alignment.html_report import COLLAPSE_PASSING_AT, render_report
from alignment.orchestrator import BranchAlignmentOrchestrator
from tests.conftest import Repo, entry, settings, write_input

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("ALIGNMENT_REQUIRE_BROWSER") == "1":
            pytest.fail("ALIGNMENT_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no chromium on PATH (CI installs it: apt-get install chromium)")
    return found


class Page(HTMLParser):
    """The DOM Chromium printed: elements with their attributes and text, in document order."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in ("br", "meta", "line", "input"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag not in (element["tag"] for element in self._open):
            return  # the end of an element never left open (an SVG <line></line>)
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def all(self, tag: str, **attrs: str) -> list[dict[str, Any]]:
        return [
            element
            for element in self.elements
            if element["tag"] == tag and all(element["attrs"].get(key) == value for key, value in attrs.items())
        ]

    def text(self) -> str:
        return " ".join(" ".join(element["text"].split()) for element in self.all("body"))


def render(browser: str, page: Path, profile: Path) -> Page:
    done = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return Page(done.stdout)


@pytest.mark.slow
def test_plan_page_shows_outcomes_causes_matrix_and_links(browser: str, tmp_path: Path) -> None:
    repo, input_path = build_demo(tmp_path / "demo")
    reports = tmp_path / "reports"
    plan = BranchAlignmentOrchestrator(reports_dir=reports).plan(input_path, repo)
    page_path = reports / "runs" / plan["run_id"] / "alignment_plan.html"

    page = render(browser, page_path, tmp_path / "profile")

    text = page.text()
    assert "Branch alignment plan" in text
    assert "20 branches" in text
    assert "16 would align" in text
    buttons = [element["text"] for element in page.all("button")]
    assert buttons == [
        "all (20)",
        "completed (16)",
        "failed integration (3)",
        "failed error detection (1)",
    ], "the filter bar is built by the page's script: it ran"
    rows = {row["attrs"]["data-status"] for row in page.all("tr") if "data-status" in row["attrs"]}
    assert rows == {"completed", "failed_integration", "failed_error_detection"}
    badges = [element for element in page.all("span", **{"class": "status"})]
    assert len(badges) == 20
    assert {badge["attrs"]["style"] for badge in badges if badge["text"] == "failed integration"} == {
        "background:#cf222e"
    }
    assert "src/pipeline.py:6 error python_syntax_error" in text
    causes = page.all("table", id="causes")[0]["text"]
    assert "feature/auth" in causes
    assert "src/auth.py" in causes
    assert "Add auth settings and a pipeline helper" in causes
    assert "ops/docker & ops/monitoring: tools/versions.toml" in text
    assert len(page.all("td", **{"class": "hit"})) == 2  # the pair, both ways in the grid
    links = [unquote(link["attrs"]["href"]) for link in page.all("a")]
    assert len(links) == 20
    assert all((page_path.parent / link).is_file() for link in links)
    assert len(page.all("rect", **{"class": "bar"})) == 20


@pytest.mark.slow
def test_run_page_shows_the_breaker_trip_on_the_timeline(browser: str, tmp_path: Path) -> None:
    repo, input_path = build_demo(tmp_path / "demo")
    config = {"orchestration": {"failure_threshold_count": 1, "failure_threshold_percent": 1}}
    reports = tmp_path / "reports"
    result = BranchAlignmentOrchestrator(config, reports_dir=reports).run(input_path, repo)
    assert result["overall_summary"]["circuit_breaker_triggered"]

    page = render(browser, reports / "alignment_results.html", tmp_path / "profile")

    summary = result["overall_summary"]
    started = summary["total_branches_processed"]
    assert len(page.all("rect", **{"class": "bar"})) == started
    assert len(page.all("line", **{"class": "breaker"})) == 1
    assert "circuit breaker tripped" in page.text()
    assert len(page.all("tr", **{"data-status": "not_run"})) == summary["total_not_run"] > 0
    links = [unquote(link["attrs"]["href"]) for link in page.all("a")]
    assert links
    assert all((reports / link).is_file() for link in links), "the top-level copy links into the run folder"


@pytest.mark.slow
def test_a_big_run_reads_well_collapsed_passing_rows_search_and_an_axis_to_the_run_end(
    browser: str, tmp_path: Path
) -> None:
    repo, input_path = build_demo(tmp_path / "demo")
    config = {"orchestration": {"failure_threshold_count": 3, "failure_threshold_percent": 10}}
    reports = tmp_path / "reports"
    small = BranchAlignmentOrchestrator(config, reports_dir=reports).run(input_path, repo)
    summary = small["overall_summary"]
    assert summary["circuit_breaker_triggered"]

    page = render(browser, reports / "alignment_results.html", tmp_path / "profile")
    assert not [row for row in page.all("tr") if "hidden" in row["attrs"]], "a small run shows every row"
    assert [header["text"] for header in page.all("th")][:5] == ["Branch", "Status", "Action", "Time (s)", "Worker"]
    labels = {text["text"]: float(text["attrs"]["y"]) for text in page.all("text")}
    axis = f"{max(summary['total_time_seconds'], 1e-3):.2f} s (run end)"
    assert axis in labels, "the axis ends where the headline's total does"
    trip = next(label for label in labels if label.startswith("circuit breaker tripped at "))
    assert labels[trip] < min(y for label, y in labels.items() if label.startswith("align-")) < labels[axis]

    big = copy.deepcopy(small)
    group = big["orchestration_results"]["main"]
    group["branches"] = [
        {**branch, "branch_name": f"{branch['branch_name']}-{index}"}
        for index in range(40)
        for branch in small["orchestration_results"]["main"]["branches"]
    ]
    page_path = tmp_path / "big.html"
    page_path.write_text(render_report(big, tmp_path), encoding="utf-8")
    page = render(browser, page_path, tmp_path / "profile")
    rows = page.all("tr")
    completed = [row for row in rows if row["attrs"].get("data-status") == "completed"]
    failed = [row for row in rows if row["attrs"].get("data-status", "completed") != "completed"]
    assert len(completed) > COLLAPSE_PASSING_AT / 2
    assert all("hidden" in row["attrs"] for row in completed), "passing rows start collapsed"
    assert not [row for row in failed if "hidden" in row["attrs"]]
    assert page.all("input", id="search", type="search")
    assert "checked" not in page.all("input", id="passing")[0]["attrs"]
    total = len(completed) + len(failed)
    assert f"showing {len(failed)} of {total} branches" in page.text()


def test_names_paths_messages_and_subjects_are_escaped_in_the_page(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Markup in a branch name, a conflicted path (so the error message), a commit subject or an author is
    shown as text: the page keeps its own single script and gains no element."""
    branch, path = "x/<script>alert(1)</script>", "<img src=x onerror=alert(2)>.txt"
    base = repo.tip("main")
    repo.commit(branch, {path: "ours\n"}, parent=base)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Eve & Co")  # git drops < and > from names
    repo.commit("main", {path: "theirs\n"}, "<script>alert(3)</script>")
    input_path = write_input(tmp_path / "in.json", [entry(branch)])
    result = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").run(input_path, repo.path)
    assert result["orchestration_results"]["main"]["branches"][0]["errors_detected"] == ["merge_conflict_unresolvable"]

    html = (tmp_path / "reports" / "alignment_results.html").read_text(encoding="utf-8")

    for payload in (branch, path, "<script>alert(3)</script>", "Eve & Co"):
        assert payload not in html
    page = Page(html)
    assert len(page.all("script")) == 1
    assert page.all("img") == []
    text = page.text()
    for shown in (branch, f"Merge conflict in {path} (unresolvable)", "<script>alert(3)</script>", "Eve & Co"):
        assert shown in text
    bars = page.all("rect", **{"class": "bar"})
    assert [bar["attrs"]["data-branch"] for bar in bars] == [branch]


def test_a_plans_targets_findings_and_conflict_matrix_are_escaped_in_the_page(repo: Repo, tmp_path: Path) -> None:
    """Markup in a target's name, in a finding (its file and message) and in the conflict matrix (branch names
    and paths of a pair) is shown as text: the plan page gains no element."""
    target, path, broken = "rel<em>", "<img src=x onerror=alert(1)>.txt", "<s>bad</s>.json"
    lines = [f"line {number}\n" for number in range(8)]
    repo.commit(target, {broken: "".join(lines)}, parent=repo.tip("main"))
    base = repo.tip(target)
    repo.commit("a<i>", {path: "a\n", broken: "".join(["line 0 \n", *lines[1:]])}, parent=base)
    repo.commit("b<u>", {path: "b\n"}, parent=base)
    repo.commit(target, {broken: "".join([*lines[:7], "line 7, changed\n"])})
    input_path = write_input(tmp_path / "in.json", [entry("a<i>", target), entry("b<u>", target)])
    plan = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").plan(input_path, repo.path)
    group = plan["orchestration_results"][target]
    assert group["conflict_matrix"]["conflicts"][0]["paths"] == [path]
    assert any(finding["file"] == broken for finding in group["branches"][0]["findings"])

    html = (tmp_path / "reports" / "alignment_plan.html").read_text(encoding="utf-8")

    page = Page(html)
    assert [element["tag"] for element in page.elements if element["tag"] in ("em", "img", "s", "i", "u")] == []
    assert len(page.all("script")) == 1
    text = page.text()
    for shown in (target, path, broken, "a<i> & b<u>"):
        assert shown in text


def test_a_check_commands_output_in_a_finding_is_escaped_in_the_page(repo: Repo, tmp_path: Path) -> None:
    """A failed check command's finding quotes the end of its output, which may hold markup."""
    repo.commit("feature", {"f.txt": "f\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    check = [sys.executable, "-c", "print('<i>boom</i>'); raise SystemExit(1)"]
    orchestrator = BranchAlignmentOrchestrator(settings(check_commands=[check]), reports_dir=tmp_path / "reports")
    result = orchestrator.run(write_input(tmp_path / "in.json", [entry("feature")]), repo.path)
    [finding] = result["orchestration_results"]["main"]["branches"][0]["findings"]
    assert "<i>boom</i>" in finding["message"]

    page = Page((tmp_path / "reports" / "alignment_results.html").read_text(encoding="utf-8"))
    assert page.all("i") == []
    assert "<i>boom</i>" in page.text()


def test_a_conflicted_path_that_is_not_utf8_is_written_into_both_reports(repo: Repo, tmp_path: Path) -> None:
    """git gives a file name's bytes; one that is not UTF-8 (a lone surrogate once decoded) cannot be written
    as it is into a UTF-8 file: the JSON keeps it exactly as an escape, the page shows it as ``\\xNN``.
    The run is a process of its own: this suite's xdist cannot send the name in a captured log line."""
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    base = repo.commit("main", {name: "base\n"})
    repo.commit("feature", {name: "feature\n"}, parent=base)
    repo.commit("main", {name: "main\n"})
    input_path = write_input(tmp_path / "in.json", [entry("feature")])
    script = (
        "import sys; from alignment.orchestrator import BranchAlignmentOrchestrator as Run; "
        "Run(reports_dir=sys.argv[1]).run(sys.argv[2], sys.argv[3])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "reports"), str(input_path), str(repo.path)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads((tmp_path / "reports" / "alignment_results.json").read_text(encoding="utf-8"))
    [branch] = written["orchestration_results"]["main"]["branches"]
    assert branch["error_message"] == f"Merge conflict in {name} (unresolvable)"
    assert [culprit["path"] for culprit in branch["culprits"]] == [name]
    page = Page((tmp_path / "reports" / "alignment_results.html").read_text(encoding="utf-8"))
    assert "caf\\xe9.txt" in page.text()


def test_quotes_in_names_and_paths_stay_inside_attributes_and_every_cause_row_is_escaped(
    repo: Repo, tmp_path: Path
) -> None:
    """A ``"`` ends an attribute: branch names in the matrix's header titles and paths in its cells' titles
    must not open elements; the target's name in a cause row, and the branch, target and path of a cause
    left unexplained (no budget for the search), are shown as text too."""
    target, one, many, both = 'r"><u>t', 'p1"><em>.txt', 'p2"><s>.txt', 'm"><em>.txt'
    failing, left, right = 'a"><i>x', 'c"><q>y', 'd"><q>z'
    base = repo.commit(target, {one: "base\n", many: "base\n"}, parent=repo.tip("main"))
    repo.commit(failing, {one: "branch\n", many: "branch\n"}, parent=base)
    repo.commit(left, {both: "left\n"}, parent=base)
    repo.commit(right, {both: "right\n"}, parent=base)
    repo.commit(target, {one: "target\n"})
    repo.commit(target, {many: "target 1\n"})
    repo.commit(target, {many: "target 2\n"})  # two commits: without a budget, a cause left unexplained
    input_path = write_input(tmp_path / "in.json", [entry(name, target) for name in (failing, left, right)])
    orchestrator = BranchAlignmentOrchestrator(settings(explain_budget_merges=0), reports_dir=tmp_path / "reports")
    group = orchestrator.plan(input_path, repo.path)["orchestration_results"][target]
    [unexplained] = group["branches"][0]["unexplained"]
    assert unexplained["paths"] == [many]
    assert [culprit["path"] for culprit in group["branches"][0]["culprits"]] == [one]
    assert group["conflict_matrix"]["conflicts"] == [{"branches": [left, right], "paths": [both]}]

    page = Page((tmp_path / "reports" / "alignment_plan.html").read_text(encoding="utf-8"))

    assert [element["tag"] for element in page.elements if element["tag"] in ("u", "em", "s", "i", "q")] == []
    assert [header["attrs"]["title"] for header in page.all("th") if "title" in header["attrs"]] == [left, right]
    assert [cell["attrs"]["title"] for cell in page.all("td", **{"class": "hit"})] == [both, both]
    causes = [row["text"] for row in page.all("tr") if row["text"].startswith(failing + target)]
    assert len(causes) == 2  # the cause found and the one left unexplained
    assert [many in cause for cause in causes] == [False, True]
    assert len(page.all("script")) == 1


def test_a_branch_that_never_started_is_escaped_in_the_page(repo: Repo, tmp_path: Path) -> None:
    """The rows of branches the tripped breaker left unstarted show their names as text and in attributes."""
    base = repo.tip("main")
    repo.commit("first", {"README.md": "ours\n"}, parent=base)
    never = 'n"><u>x'
    repo.commit(never, {"n.txt": "n\n"}, parent=base)
    repo.commit("main", {"README.md": "theirs\n"})
    config = settings(enable_parallelization=False, failure_threshold_count=1, failure_threshold_percent=1)
    orchestrator = BranchAlignmentOrchestrator(config, reports_dir=tmp_path / "reports")
    result = orchestrator.run(write_input(tmp_path / "in.json", [entry("first"), entry(never)]), repo.path)
    assert result["orchestration_results"]["main"]["not_run"] == [never]

    page = Page((tmp_path / "reports" / "alignment_results.html").read_text(encoding="utf-8"))

    assert page.all("u") == []
    [row] = page.all("tr", **{"data-status": "not_run"})
    assert row["attrs"]["data-branch"] == never
    assert never in row["text"]
