"""Plan and explain: a plan predicts the run and moves nothing; culprits by one search per branch, within its
budget; the conflict matrix."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest

from alignment import explain
from alignment.cli import main as cli
from alignment.demo import History
from alignment.errors import GitTimeout
from alignment.explain import Budget, Explanation, conflict_matrix, explain_conflicts
from alignment.git import Git, MergeTree, RepoLocation
from alignment.html_report import render_report, skipped_pairs
from alignment.model import BranchResult, Status, Unexplained
from alignment.orchestrator import BranchAlignmentOrchestrator
from bench.generate import generate
from plugins.controller import headline
from tests.conftest import Aligner, Repo, entry, settings, with_merge_of_its_own, write_input

UNLIMITED = Budget(merges=10_000, seconds=600)

MakeInput = Callable[..., Path]


def repository_state(repo: Repo) -> tuple[str, str]:
    """Every ref with its commit, and the worktrees: what a plan must leave exactly as it was."""
    return repo.git("for-each-ref", "--format=%(refname) %(objectname)"), repo.git("worktree", "list", "--porcelain")


def loose_objects(repo: Repo) -> set[Path]:
    return set((repo.path / ".git" / "objects").glob("[0-9a-f][0-9a-f]/*"))


def statuses(result: dict[str, object]) -> dict[str, str]:
    groups = result["orchestration_results"]
    assert isinstance(groups, dict)
    return {branch["branch_name"]: branch["status"] for group in groups.values() for branch in group["branches"]}


def tree(git_dir: Path, commit: str) -> str:
    return Repo(git_dir).git("rev-parse", f"{commit}^{{tree}}")


# -- plan ----------------------------------------------------------------------------------------------------


def test_plan_predicts_what_the_run_then_does_and_moves_nothing(tmp_path: Path) -> None:
    scenario = generate(tmp_path / "generated", 40, files=200, depth=60, conflict_share=0.2, syntax_share=0.1)
    repo = Repo(scenario.repo)
    before = repository_state(repo)
    orchestrator = BranchAlignmentOrchestrator({"orchestration": {"max_workers_per_target": 2}}, reports_dir=tmp_path)

    plan = orchestrator.plan(scenario.input_path, scenario.repo)

    assert repository_state(repo) == before, "a plan created or moved a ref, or left a worktree"
    assert plan["planned"] is True
    assert statuses(plan) == scenario.expected
    assert (tmp_path / "alignment_plan.json").exists()
    assert (tmp_path / "alignment_plan.html").exists()
    assert not (tmp_path / "alignment_results.json").exists()
    assert not (tmp_path / "latest").exists()

    run = orchestrator.run(scenario.input_path, scenario.repo)

    assert run["planned"] is False
    assert statuses(run) == statuses(plan)
    predicted = {b["branch_name"]: b for b in plan["orchestration_results"]["main"]["branches"]}
    for branch in run["orchestration_results"]["main"]["branches"]:
        guess = predicted[branch["branch_name"]]
        assert guess["planned"] is True
        assert "planned" not in branch
        assert guess["backup_branch"] == branch["backup_branch"]  # named, not made: the plan moved no ref
        assert guess["errors_detected"] == branch["errors_detected"]
        if branch["new_tip"]:
            assert tree(scenario.repo, guess["new_tip"]) == tree(scenario.repo, branch["new_tip"])
            assert repo.tip(branch["branch_name"]) == branch["new_tip"]


def test_plan_of_a_rebase_target_makes_no_worktree_and_skips_check_commands(
    repo: Repo, tmp_path: Path, make_input: MakeInput
) -> None:
    base = repo.tip("main")
    repo.commit("main", {"app.py": "def main():\n    return 2\n"})
    repo.commit("topic", {"notes.txt": "mine\n"}, parent=base)
    repo.commit("clash", {"app.py": "def main():\n    return 3\n"}, parent=base)
    with_merge_of_its_own(repo, "merged", base)  # predicted refused, as the run refuses it
    config = settings(integration_strategy="rebase", check_commands=[["false"]])
    before = repository_state(repo)

    plan = BranchAlignmentOrchestrator(config, reports_dir=tmp_path / "reports").plan(
        make_input("topic", "clash", "merged"), repo.path
    )

    assert repository_state(repo) == before
    assert statuses(plan) == {"topic": "completed", "clash": "failed_integration", "merged": "failed_integration"}
    topic = plan["orchestration_results"]["main"]["branches"][0]
    assert [finding["code"] for finding in topic["findings"]] == ["check_commands_not_run"]
    document = Path(topic["changes_summary"]).read_text(encoding="utf-8")
    assert "predicted by a plan; nothing was changed" in document
    assert "(predicted)" in document


def test_plan_is_never_stopped_by_the_circuit_breaker(repo: Repo, tmp_path: Path, make_input: MakeInput) -> None:
    base = repo.tip("main")
    repo.commit("main", {"app.py": "def main():\n    return 2\n"})
    names = [f"clash-{index}" for index in range(4)]
    for index, name in enumerate(names):
        repo.commit(name, {"app.py": f"def main():\n    return {10 + index}\n"}, parent=base)
    config = settings(failure_threshold_count=1, failure_threshold_percent=1, max_workers_per_target=1)

    plan = BranchAlignmentOrchestrator(config, reports_dir=tmp_path / "reports").plan(make_input(*names), repo.path)

    assert statuses(plan) == dict.fromkeys(names, "failed_integration")
    assert plan["overall_summary"]["circuit_breaker_triggered"] is False


# -- culprits ------------------------------------------------------------------------------------------------


CONFIG = [f"setting {number} = 0\n" for number in range(30)]


def config_with(**lines: str) -> str:
    """``config.txt`` with some of its 30 lines (``l5="..."``) replaced."""
    changed = {int(key[1:]): f"{value}\n" for key, value in lines.items()}
    return "".join(changed.get(number, line) for number, line in enumerate(CONFIG))


@pytest.fixture
def long_target(repo: Repo) -> tuple[str, list[str]]:
    """``main`` gets 24 more commits after ``topic`` forked. Five change ``config.txt``, on lines far apart,
    but only the 7th on the line ``topic`` changes; the 17th is the only one that changes ``app.py``. So
    merging main into ``topic`` conflicts in both files, each because of one commit."""
    base = repo.commit("main", {"config.txt": config_with()}, "add config")
    edits = {3: {"l0": "first"}, 7: {"l15": "middle = 7"}, 11: {"l29": "last"}, 15: {"l5": "five"}, 19: {"l25": "x"}}
    commits = []
    lines: dict[str, str] = {}
    for number in range(1, 25):
        files = {f"docs/{number}.txt": f"page {number}\n"}
        if number in edits:
            lines.update(edits[number])
            files["config.txt"] = config_with(**lines)
        if number == 17:
            files["app.py"] = "def main():\n    return 17\n"
        commits.append(repo.commit("main", files, f"main step {number}"))
    topic_files = {"config.txt": config_with(l15="middle = 0"), "app.py": "def main():\n    return 0\n"}
    repo.commit("topic", topic_files, parent=base)
    return base, commits


def test_the_search_names_the_commit_behind_each_conflicted_path(
    repo: Repo, long_target: tuple[str, list[str]]
) -> None:
    _, commits = long_target
    objects = loose_objects(repo)
    git = Git(RepoLocation.discover(repo.path))
    try:
        found = explain_conflicts(git, repo.tip("topic"), repo.tip("main"), ["app.py", "config.txt"], UNLIMITED)
    finally:
        git.close()

    assert loose_objects(repo) == objects, "the probe merges left objects in the repository"

    assert [(culprit.path, culprit.commit.oid) for culprit in found.culprits] == [
        ("app.py", commits[16]),
        ("config.txt", commits[6]),
    ]
    assert found.culprits[0].commit.subject == "main step 17"
    assert found.culprits[0].commit.author == "Test Author"
    assert found.unexplained == ()
    assert found.merges == 3, "app.py: one commit changed it (no merge); config.txt: five did, the earliest first"
    # (clean there), then 2 merges halve the four left


def test_a_cause_that_is_the_first_change_since_the_fork_takes_one_merge(repo: Repo) -> None:
    """A file both sides keep changing in one place (a generated list): the target's first change to it after
    the fork is the cause, found with one merge however many later commits changed it too."""
    base = repo.commit("main", {"list.txt": "version 0\n"}, "add the list")
    commits = [repo.commit("main", {"list.txt": f"version {number}\n"}, f"update {number}") for number in range(1, 33)]
    repo.commit("topic", {"list.txt": "version topic\n"}, parent=base)
    git = Git(RepoLocation.discover(repo.path))
    try:
        found = explain_conflicts(git, repo.tip("topic"), repo.tip("main"), ["list.txt"], UNLIMITED)
    finally:
        git.close()

    assert [(culprit.path, culprit.commit.oid) for culprit in found.culprits] == [("list.txt", commits[0])]
    assert found.merges == 1, "the earliest candidate is tried first, not log2(32) = 5 halvings"


def test_a_conflicting_branch_reports_its_culprits_in_the_result_and_the_document(
    repo: Repo, align: Aligner, long_target: tuple[str, list[str]]
) -> None:
    _, commits = long_target

    result = align("topic")["topic"]

    assert result.status is Status.FAILED_INTEGRATION
    assert result.message == "Merge conflict in app.py, config.txt (unresolvable)"
    assert {culprit.path: culprit.commit.oid for culprit in result.culprits} == {
        "app.py": commits[16],
        "config.txt": commits[6],
    }
    assert result.to_dict()["culprits"][0] == {
        "path": "app.py",
        "commit": commits[16],
        "subject": "main step 17",
        "author": "Test Author",
    }
    assert BranchResult.from_dict(result.to_dict()).culprits == result.culprits
    document = Path(str(result.document)).read_text(encoding="utf-8")
    assert f"`{commits[16][:12]}` main step 17 — Test Author" in document


def test_separator_bytes_in_subjects_authors_and_paths_are_read_as_data(
    repo: Repo, align: Aligner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commit subjects and authors may hold any byte but NUL and newline, paths any byte but NUL."""
    base = repo.tip("main")
    weird_path = "\nstarts with a newline\x1e.txt"
    repo.commit("topic", {"app.py": "def main():\n    return 0\n", weird_path: "ours\n"}, parent=base)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Ann\x1e\x1fO")
    culprit = repo.commit(
        "main", {"app.py": "def main():\n    return 2\n", weird_path: "theirs\n"}, "fix\x1e\x1fit\x1e"
    )
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    repo.commit("main", {"other.txt": "x\n"}, "later\x1e")

    result = align("topic")["topic"]

    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("merge_conflict_unresolvable",))
    assert {c.path: (c.commit.oid, c.commit.author, c.commit.subject) for c in result.culprits} == {
        path: (culprit, "Ann\x1e\x1fO", "fix\x1e\x1fit\x1e") for path in ("app.py", weird_path)
    }
    git = Git(RepoLocation.discover(repo.path))
    try:
        listed = git.commits_between(base, repo.tip("main"), 5)[0]
        window = git.history_window(repo.tip("main"), 5)
    finally:
        git.close()
    assert [(c.author, c.subject) for c in listed] == [
        ("Test Author", "later\x1e"),
        ("Ann\x1e\x1fO", "fix\x1e\x1fit\x1e"),
    ]
    assert [(author, subject) for _, _, author, subject in window[:2]] == [(c.author, c.subject) for c in listed]


def test_a_merge_on_the_target_line_is_named_for_what_it_merged(repo: Repo) -> None:
    base = repo.tip("main")
    side = repo.commit("side", {"app.py": "def main():\n    return 5\n"}, "side change", parent=base)
    main_step = repo.commit("main", {"other.txt": "x\n"}, "unrelated step")
    merge = repo.commit("main", {"app.py": "def main():\n    return 5\n"}, "Merge side", parents=(main_step, side))
    repo.commit("topic", {"app.py": "def main():\n    return 0\n"}, parent=base)
    git = Git(RepoLocation.discover(repo.path))
    try:
        found = explain_conflicts(git, repo.tip("topic"), merge, ["app.py"], UNLIMITED)
    finally:
        git.close()
    assert [culprit.commit.oid for culprit in found.culprits] == [merge]


def test_a_merge_right_after_the_fork_is_a_candidate_like_any_other(repo: Repo) -> None:
    """The line's oldest commit is a merge whose change came from the side it merged: against its first
    parent it changed the path, so it is a candidate. (A walk that excluded the branch tip's history saw
    that parent as irrelevant and hid the merge: the later commit was blamed.)"""
    base = repo.tip("main")
    side = repo.commit("side", {"app.py": "def main():\n    return 5\n"}, "side change", parent=base)
    merge = repo.commit("main", {"app.py": "def main():\n    return 5\n"}, "Merge side", parents=(base, side))
    later = repo.commit("main", {"app.py": "def main():\n    return 6\n"}, "later change")
    repo.commit("topic", {"app.py": "def main():\n    return 0\n"}, parent=base)
    git = Git(RepoLocation.discover(repo.path))
    try:
        line = git.first_parent_line(repo.tip("topic"), later, ["app.py"])
        found = explain_conflicts(git, repo.tip("topic"), later, ["app.py"], UNLIMITED)
    finally:
        git.close()
    assert [commit.oid for commit, _ in line] == [merge, later]
    assert [culprit.commit.oid for culprit in found.culprits] == [merge]


def explained_topic_conflicts(repo: Repo, *budgets: Budget) -> tuple[list[str], list[Explanation]]:
    """The paths where ``topic`` conflicts with ``main``, and their causes searched under each of ``budgets``."""
    git = Git(RepoLocation.discover(repo.path))
    try:
        paths = [conflict.path for conflict in git.merge_tree(repo.tip("topic"), repo.tip("main")).conflicts]
        return paths, [explain_conflicts(git, repo.tip("topic"), repo.tip("main"), paths, budget) for budget in budgets]
    finally:
        git.close()


@pytest.mark.parametrize("branch_has_the_file", [True, False])
def test_a_change_under_a_conflicted_directory_is_a_change_to_it(repo: Repo, branch_has_the_file: bool) -> None:
    """A file/directory conflict is named ``docs``; the target's commits changed ``docs`` or
    ``docs/index.md``, and along with another conflicted path, each finds its own cause."""
    base = repo.tip("main")
    file, directory = {"docs": "a file\n"}, {"docs/index.md": "a directory\n"}
    repo.commit("topic", {**(file if branch_has_the_file else directory), "app.py": "topic\n"}, parent=base)
    app = repo.commit("main", {"app.py": "main\n"}, "app changes")
    docs = repo.commit("main", directory if branch_has_the_file else file, "docs change")
    repo.commit("main", {"NEWS.txt": "news\n"}, "unrelated")
    paths, [found] = explained_topic_conflicts(repo, UNLIMITED)
    assert paths == ["app.py", "docs"]
    assert [(culprit.path, culprit.commit.oid) for culprit in found.culprits] == [("app.py", app), ("docs", docs)]
    assert (found.unexplained, found.merges) == ((), 0), "one commit changed each: no merge needed"


def test_a_path_no_target_commit_changed_is_searched_over_all_of_them(repo: Repo) -> None:
    """The branch renamed ``settings.txt`` and changed a line the target changed: the conflict is named
    ``options.txt``, a path no target commit changed."""
    base = repo.commit("main", {"settings.txt": "".join(CONFIG)})
    repo.commit(
        "topic", {"settings.txt": None, "options.txt": "".join([*CONFIG[:4], "topic\n", *CONFIG[5:]])}, parent=base
    )
    change = repo.commit("main", {"settings.txt": "".join([*CONFIG[:4], "main\n", *CONFIG[5:]])}, "settings change")
    repo.commit("main", {"NEWS.txt": "news\n"}, "unrelated")
    git = Git(RepoLocation.discover(repo.path))
    try:
        conflicts = git.merge_tree(repo.tip("topic"), repo.tip("main")).conflicts
        found = explain_conflicts(git, repo.tip("topic"), repo.tip("main"), [c.path for c in conflicts], UNLIMITED)
        nothing_new = explain_conflicts(git, repo.tip("main"), base, ["options.txt"], UNLIMITED)
    finally:
        git.close()
    assert [conflict.path for conflict in conflicts] == ["options.txt"]
    assert [culprit.commit.oid for culprit in found.culprits] == [change]
    assert found.merges > 0, "searched over the target's commits"
    assert nothing_new == Explanation((), (), 0), "the target brings nothing new: nothing to blame"


LINES = 40
SHARED_LINE = 30  # what topic changes; each cause changes it too, every other main commit changes lines 0-14


def lines_with(changes: dict[int, str]) -> str:
    return "".join(f"{changes.get(number, f'line {number}')}\n" for number in range(LINES))


@dataclass(frozen=True)
class TwoCauses:
    repo: Repo
    a_files: list[str]
    b_files: list[str]
    a_cause: str
    b_cause: str
    line: list[str]  # main's commits since topic forked, oldest first


@pytest.fixture
def two_causes(tmp_path: Path) -> TwoCauses:
    """``main`` gets 32 commits after ``topic`` forked; each changes two thirds of the 16 files ``a0..a7``,
    ``b0..b7`` (a different two thirds each time) on lines away from line 30. Commit 6 also changes line 30 of
    the ``a`` files, commit 25 of the ``b`` files, and ``topic`` changes line 30 of all 16: 16 conflicted
    paths, each with about 21 candidate commits of its own, and two causes.
    Written with ``git fast-import``: a commit per file change through plumbing would take seconds."""
    a_files, b_files = [f"a{index}.txt" for index in range(8)], [f"b{index}.txt" for index in range(8)]
    history = History()
    marks = [history.commit("main", "sixteen files", dict.fromkeys(a_files + b_files, lines_with({})))]
    state: dict[str, dict[int, str]] = {name: {} for name in a_files + b_files}
    causes = {6: a_files, 25: b_files}
    for number in range(1, 33):
        for index, changes in enumerate(state.values()):
            if (number + index) % 3:  # each file changed by its own two thirds of the commits
                changes[number % 15] = f"main {number}"
        for name in causes.get(number, ()):
            state[name][SHARED_LINE] = f"main cause {number}"
        changed: dict[str, str | bytes | None] = {name: lines_with(changes) for name, changes in state.items()}
        marks.append(history.commit("main", f"step {number}", changed, [marks[-1]]))
    topic: dict[str, str | bytes | None] = {name: lines_with({SHARED_LINE: "topic"}) for name in state}
    history.commit("topic", "topic changes line 30", topic, [marks[0]])
    git = Git.init_bare(tmp_path / "causes.git")
    try:
        git.fast_import(history.stream())
    finally:
        git.close()
    repo = Repo(tmp_path / "causes.git")
    line = repo.git("rev-list", "--first-parent", "--reverse", "topic~1..main").split()
    return TwoCauses(repo, a_files, b_files, line[5], line[24], line)


def test_one_search_explains_many_paths_with_two_causes_in_few_merges(two_causes: TwoCauses) -> None:
    repo = two_causes.repo
    paths, [found] = explained_topic_conflicts(repo, UNLIMITED)

    assert sorted(paths) == sorted(two_causes.a_files + two_causes.b_files)
    assert {culprit.path: culprit.commit.oid for culprit in found.culprits} == {
        **dict.fromkeys(two_causes.a_files, two_causes.a_cause),
        **dict.fromkeys(two_causes.b_files, two_causes.b_cause),
    }
    assert found.unexplained == ()
    assert found.merges <= 2 * 5, f"two causes take about 2 x log2(32) merges, not {found.merges}"
    assert found.merges < len(paths) * 5, "fewer than a search per path (log2(32) merges each)"


def test_the_budget_cut_lists_the_paths_left_with_the_commits_they_lie_among(two_causes: TwoCauses) -> None:
    repo, line = two_causes.repo, two_causes.line
    paths, [cut, no_time] = explained_topic_conflicts(
        repo, Budget(merges=2, seconds=600), Budget(merges=99, seconds=1e-9)
    )

    assert cut.merges == 2
    assert cut.culprits == ()
    assert sorted(path for group in cut.unexplained for path in group.paths) == sorted(paths)
    for group in cut.unexplained:
        in_a = group.paths[0] in two_causes.a_files
        cause = two_causes.a_cause if in_a else two_causes.b_cause
        assert set(group.paths) <= set(two_causes.a_files if in_a else two_causes.b_files), "one cause per group"
        first, last = line.index(group.first), line.index(group.last)
        assert first <= line.index(cause) <= last, "the cause lies in the range given"
        assert group.candidates == last - first + 1, "every commit in between changed these paths"
        assert group.candidates < len(line), "the two merges narrowed the range"
    assert no_time.merges == 0
    assert no_time.unexplained == (Unexplained(tuple(paths), line[0], line[-1], len(line)),)


def test_a_branch_over_its_budget_lists_unexplained_paths_in_result_document_and_report(
    tmp_path: Path, two_causes: TwoCauses
) -> None:
    repo, line = two_causes.repo, two_causes.line
    input_path = write_input(tmp_path / "input.json", [entry("topic")])
    config = settings(explain_budget_merges=0)

    result = BranchAlignmentOrchestrator(config, reports_dir=tmp_path / "reports").run(input_path, repo.path)

    branch = result["orchestration_results"]["main"]["branches"][0]
    assert branch["status"] == "failed_integration"
    assert branch["culprits"] == []
    [group] = branch["unexplained"]
    assert sorted(group["paths"]) == sorted(two_causes.a_files + two_causes.b_files)
    assert (group["first_commit"], group["last_commit"], group["candidates"]) == (line[0], line[-1], 32)
    assert BranchResult.from_dict(branch).to_dict()["unexplained"] == branch["unexplained"]
    document = Path(branch["document"]).read_text(encoding="utf-8")
    assert "## Not explained within the budget" in document
    assert f"caused by one of 32 commits from `{line[0][:12]}` to `{line[-1][:12]}`" in document
    page = (tmp_path / "reports" / "alignment_results.html").read_text(encoding="utf-8")
    assert f"one of 32 commits from <code>{line[0][:12]}</code>" in page


# -- conflict matrix ---------------------------------------------------------------------------------------


def test_matrix_finds_branches_that_conflict_with_each_other(repo: Repo, tmp_path: Path, make_input: MakeInput) -> None:
    base = repo.tip("main")
    repo.commit("main", {"NEWS.txt": "news\n"})
    repo.commit("left", {"app.py": "def main():\n    return 'left'\n"}, parent=base)
    repo.commit("right", {"app.py": "def main():\n    return 'right'\n"}, parent=base)
    repo.commit("same", {"app.py": "def main():\n    return 'left'\n", "same.txt": "x\n"}, parent=base)
    repo.commit("apart", {"apart.txt": "alone\n"}, parent=base)
    repo.branch("behind", base)

    plan = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").plan(
        make_input("left", "right", "same", "apart", "behind"), repo.path
    )

    assert set(statuses(plan).values()) == {"completed"}
    matrix = plan["orchestration_results"]["main"]["conflict_matrix"]
    assert matrix == {
        "branches": ["left", "right", "same", "apart"],
        "pairs_checked": 3,  # left/right, left/same, right/same share app.py; apart shares nothing
        "pair_limit": explain.PAIR_LIMIT,
        "pairs_skipped": 0,
        "pairs_skipped_by_cause": {"limit": 0, "merge_failed": 0, "changes_not_listed": 0},
        "conflicts": [
            {"branches": ["left", "right"], "paths": ["app.py"]},
            {"branches": ["right", "same"], "paths": ["app.py"]},
        ],
    }
    published = json.loads((tmp_path / "reports" / "alignment_plan.json").read_text(encoding="utf-8"))
    assert published == plan


@pytest.mark.parametrize("batch", [1, 2, 32])
def test_matrix_stops_at_its_pair_limit_and_leaves_no_object(
    repo: Repo, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(explain, "PAIR_BATCH", batch)
    base = repo.tip("main")
    tips = {name: repo.commit(name, {"app.py": f"def main():\n    return '{name}'\n"}, parent=base) for name in "abcd"}
    results = [
        BranchResult(name, "main", Status.COMPLETED, 0.0, target_commit=base, new_tip=tip) for name, tip in tips.items()
    ]
    objects = loose_objects(repo)
    git = Git(RepoLocation.discover(repo.path))
    try:
        matrix = conflict_matrix(git, results, pair_limit=5)
    finally:
        git.close()
    assert (matrix.pairs_checked, matrix.pairs_skipped) == (5, 1)
    assert matrix.to_dict()["pairs_skipped_by_cause"] == {"limit": 1, "merge_failed": 0, "changes_not_listed": 0}
    assert matrix.to_dict()["pair_limit"] == 5
    assert skipped_pairs([matrix.to_dict()]) == "1 pair not checked: beyond the limit of 5 per target"
    assert [conflict.paths for conflict in matrix.conflicts] == [("app.py",)] * 5
    assert [(conflict.first, conflict.second) for conflict in matrix.conflicts][-1] == ("b", "d")
    assert loose_objects(repo) == objects, "the matrix's merges left objects in the repository"


def test_matrix_pairs_git_cannot_merge_are_skipped_and_the_others_still_merged(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(explain, "PAIR_BATCH", 1)
    base = repo.tip("main")
    tips = {name: repo.commit(name, {"app.py": f"def main():\n    return '{name}'\n"}, parent=base) for name in "ab"}
    tips["orphan"] = repo.commit("orphan", {"app.py": "unrelated\n"}, "unrelated root", parents=())
    results = [
        BranchResult(name, "main", Status.COMPLETED, 0.0, target_commit=base, new_tip=tip) for name, tip in tips.items()
    ]
    git = Git(RepoLocation.discover(repo.path))
    try:
        matrix = conflict_matrix(git, results)
    finally:
        git.close()
    assert (matrix.pairs_checked, matrix.pairs_skipped) == (1, 2)  # git refuses to merge unrelated histories
    assert matrix.to_dict()["pairs_skipped_by_cause"] == {"limit": 0, "merge_failed": 2, "changes_not_listed": 0}
    assert [(conflict.first, conflict.second) for conflict in matrix.conflicts] == [("a", "b")]


class SlowToList(Git):
    """A ``Git`` that runs out of time listing the changes of one tip, as a tiny
    ``integration_timeout_seconds`` makes it do now and then."""

    def __init__(self, location: RepoLocation, slow_tip: str) -> None:
        super().__init__(location)
        self.slow_tip = slow_tip

    def tree_changes(self, old: str, new: str) -> dict[str, tuple[str, str] | None]:
        if new == self.slow_tip:
            raise GitTimeout(("cat-file", "--batch"), 0.001)
        return super().tree_changes(old, new)


def test_matrix_pairs_of_a_branch_whose_changes_git_cannot_list_are_skipped(repo: Repo) -> None:
    """A git timeout listing a branch's changes escaped ``--plan`` as a traceback, with no plan written."""
    base = repo.tip("main")
    tips = {name: repo.commit(name, {"app.py": f"def main():\n    return '{name}'\n"}, parent=base) for name in "abc"}
    tips["apart"] = repo.commit("apart", {"apart.txt": "alone\n"}, parent=base)
    results = [
        BranchResult(name, "main", Status.COMPLETED, 0.0, target_commit=base, new_tip=tip) for name, tip in tips.items()
    ]
    git = SlowToList(RepoLocation.discover(repo.path), tips["b"])
    try:
        matrix = conflict_matrix(git, results)
    finally:
        git.close()
    assert matrix.branches == ("a", "b", "c", "apart")
    assert (matrix.pairs_checked, matrix.pairs_skipped) == (1, 3)  # a/c merged; b with a, c and apart unknown
    assert matrix.to_dict()["pairs_skipped_by_cause"] == {"limit": 0, "merge_failed": 0, "changes_not_listed": 3}
    assert [(conflict.first, conflict.second) for conflict in matrix.conflicts] == [("a", "c")]


def test_a_plan_whose_matrix_skipped_pairs_says_how_many_and_why(
    repo: Repo, tmp_path: Path, make_input: MakeInput
) -> None:
    """The summary said "2000 branch pairs conflict with each other" when 42,850 more were never merged, and
    the page called every skipped pair "(limit)", also those git failed on or of branches not listed."""
    base = repo.tip("main")
    repo.commit("left", {"app.py": "def main():\n    return 'left'\n"}, parent=base)
    repo.commit("right", {"app.py": "def main():\n    return 'right'\n"}, parent=base)
    plan = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").plan(make_input("left", "right"), repo.path)
    assert "not checked" not in headline(plan)
    assert "not checked" not in render_report(plan, tmp_path)
    matrix = plan["orchestration_results"]["main"]["conflict_matrix"]

    matrix["pairs_skipped_by_cause"]["limit"] = 42850
    assert headline(plan).endswith(
        "; 1 branch pair conflicts with each other (42850 pairs not checked: beyond the limit of 2000 per target)"
    )
    matrix["pairs_skipped_by_cause"].update(merge_failed=3, changes_not_listed=1)
    skipped = (
        "42854 pairs not checked: 42850 beyond the limit of 2000 per target, 3 git failed or timed out merging, "
        "1 with a branch whose changes git could not list"
    )
    assert headline(plan).endswith(f" ({skipped})")
    assert f"(1 pair with common paths merged; {skipped})" in unescape(render_report(plan, tmp_path))

    matrix["pair_limit"] = 5  # the limit the matrix used, not the default: the page printed 2000 whatever it was
    assert "42850 beyond the limit of 5 per target" in headline(plan)
    assert "42850 beyond the limit of 5 per target" in unescape(render_report(plan, tmp_path))


def test_skipped_pairs_of_several_targets_name_each_matrix_s_own_limit() -> None:
    """The summary read every limit as ``PAIR_LIMIT``: targets whose matrices used other limits say each, and a
    cause whose wording needs no limit is counted once over all targets."""
    matrices = [
        {"pair_limit": limit, "pairs_skipped_by_cause": {"limit": beyond, "merge_failed": 1, "changes_not_listed": 0}}
        for limit, beyond in ((5, 10), (7, 20))
    ]
    assert skipped_pairs(matrices) == (
        "32 pairs not checked: 10 beyond the limit of 5 per target, 20 beyond the limit of 7 per target, "
        "2 git failed or timed out merging"
    )


class SharedPath(Git):
    """A ``Git`` whose every tip changes ``CHANGELOG`` and a file of its own, and whose merges are all clean:
    no git runs, so thousands of branches cost only the matrix's own work."""

    def tree_changes(self, old: str, new: str) -> dict[str, tuple[str, str] | None]:
        return {"CHANGELOG": ("100644", new), f"{new}.txt": ("100644", new)}

    def probe_merges(self, pairs: Sequence[tuple[str, str]], *, timeout: float | None = None) -> tuple[MergeTree, ...]:
        return tuple(MergeTree("", ()) for _ in pairs)


def test_matrix_of_thousands_of_branches_sharing_a_path_holds_no_more_pairs_than_its_limit(repo: Repo) -> None:
    """2,500 branches that all change one file are 3.1 M overlapping pairs: the matrix listed them all before
    cutting at the limit (hundreds of MB); it keeps the first ``limit`` and only counts the rest."""
    results = [
        BranchResult(f"b{index}", "main", Status.COMPLETED, 0.0, target_commit="base", new_tip=f"tip{index}")
        for index in range(2500)
    ]
    git = SharedPath(RepoLocation.discover(repo.path))
    tracemalloc.start()
    try:
        matrix = conflict_matrix(git, results)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        git.close()
    assert (matrix.pairs_checked, matrix.pairs_skipped) == (explain.PAIR_LIMIT, 2500 * 2499 // 2 - explain.PAIR_LIMIT)
    assert peak < 5_000_000, f"the matrix peaked at {peak} bytes"


def test_plans_are_listed_apart_from_runs_and_not_taken_for_dead_runs(
    repo: Repo, tmp_path: Path, make_input: MakeInput, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit("topic", {"notes.txt": "mine\n"}, parent=repo.tip("main"))
    repo.commit("main", {"NEWS.txt": "news\n"})
    input_path = make_input("topic")
    orchestrator = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports")
    plan_id = orchestrator.plan(input_path, repo.path)["run_id"]
    run = orchestrator.run(input_path, repo.path)

    assert cli(["runs", "--reports-dir", str(tmp_path / "reports")]) == 0
    listed = capsys.readouterr().out
    assert f"{plan_id}  plan: 1 would align, 0 would fail; 0 branches moved" in listed
    assert f"{run['run_id']}  1 ok, 0 failed, 0 not run; 1 branch moved" in listed
    assert orchestrator.last_setup is not None
    assert orchestrator.last_setup.housekeeping == ()
