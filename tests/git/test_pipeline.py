"""One branch's pipeline on real repositories: every status, and nothing lost on any path."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import alignment.detect
from alignment.backup import create_backup
from alignment.components import BranchContext, ChangeRecord, Integration
from alignment.config import Settings
from alignment.detect import ChangeErrorDetector
from alignment.document import MarkdownDocGenerator, record_put_back
from alignment.git import Git, RefUpdate, RepoLocation
from alignment.inputs import parse_branches
from alignment.integrate import MergeOrRebaseIntegrator
from alignment.model import Action, Finding, Status
from alignment.orchestrator import BranchAlignmentOrchestrator
from alignment.pipeline import Runtime
from alignment.registry import Components
from alignment.session import RunSetup, set_up_run
from tests.conftest import Aligner, Repo, entry, settings

CONFIG = Settings()


def diverge(repo: Repo, branch: str, branch_files: dict[str, str | None], main_files: dict[str, str | None]) -> str:
    """Fork ``branch`` from main, give both sides a commit; return the branch's old tip."""
    base = repo.tip("main")
    old = repo.commit(branch, branch_files, f"{branch} work", parent=base)
    repo.commit("main", main_files, "main work")
    return old


def assert_untouched(repo: Repo, branch: str, old_tip: str, status_before: str) -> None:
    assert repo.tip(branch) == old_tip
    assert repo.status() == status_before
    assert repo.git("symbolic-ref", "HEAD") == "refs/heads/main"


def test_clean_merge_moves_the_branch_to_a_true_merge(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "feature/x", {"new.py": "X = 1\n"}, {"README.md": "# Project\n\nBetter text.\n"})
    target = repo.tip("main")
    status_before = repo.status()

    result = align("feature/x")["feature/x"]

    assert result.status is Status.COMPLETED
    assert (result.action, result.codes, result.message) == (Action.MERGE, (), None)
    new = repo.tip("feature/x")
    assert new == result.new_tip
    assert repo.git("rev-parse", f"{new}^1", f"{new}^2").split() == [old, target]
    expected_tree = repo.git("merge-tree", "--write-tree", old, target)
    assert repo.git("rev-parse", f"{new}^{{tree}}") == expected_tree
    assert "Merge branch 'main' into feature/x" in repo.git("log", "-1", "--format=%B", new)
    assert repo.tip("backup-feature/x-pre-align") == old
    assert repo.status() == status_before
    document = Path(str(result.document))
    assert document.name == "feature%2Fx.md"
    text = document.read_text()
    assert "## Files merged\n\nNone: every file the alignment changes comes unchanged from main" in text
    assert f"`git diff --stat {old} {new}`" in text
    assert "main work" in text
    assert new in text
    assert result.to_dict()["changes_summary"] == str(document)


def test_files_both_sides_changed_are_documented_against_the_old_tip(repo: Repo, align: Aligner) -> None:
    base = "".join(f"line {number}\n" for number in range(10))
    repo.commit("main", {"shared.txt": base, "[odd]*.txt": base})
    ours = base.replace("line 1\n", "line one\nline 1b\n")
    theirs = base.replace("line 8\n", "line eight\n")
    diverge(
        repo,
        "both",
        {"shared.txt": ours, "[odd]*.txt": ours, "own.txt": "mine\n"},
        {"shared.txt": theirs, "[odd]*.txt": theirs, "their.txt": "theirs\n"},
    )
    result = align("both")["both"]
    assert result.status is Status.COMPLETED
    text = Path(str(result.document)).read_text()
    assert "## Files merged (2, +2 -2)" in text
    assert "| `shared.txt` | M | 1 | 1 |" in text
    assert "| `[odd]*.txt` | M | 1 | 1 |" in text
    assert "own.txt" not in text
    assert "their.txt" not in text


def test_a_file_renamed_on_one_side_and_changed_on_the_other_is_documented_as_a_rename(
    repo: Repo, align: Aligner
) -> None:
    """As ``git diff -M`` shows it: the old tip's file under its new name, with the lines that changed, not
    a file added whole. Files merely added or renamed stay as they were."""
    base = "".join(f"line {number}\n" for number in range(20))
    repo.commit("main", {"old name.txt": base, "kept.txt": base, "gone.txt": "gone\n"})
    old = diverge(
        repo,
        "both",
        {"old name.txt": base.replace("line 1\n", "line one\n"), "kept.txt": base.replace("line 2\n", "two\n")},
        {
            "old name.txt": None,
            "new name.txt": base.replace("line 18\n", "line eighteen\n"),
            "kept.txt": base.replace("line 12\n", "twelve\n"),
            "gone.txt": None,
            "fresh.txt": "fresh\n",
        },
    )
    result = align("both")["both"]
    assert result.status is Status.COMPLETED
    text = Path(str(result.document)).read_text()
    assert "## Files merged (2, +2 -2)" in text
    assert "| `old name.txt` → `new name.txt` | R | 1 | 1 |" in text
    assert "| `kept.txt` | M | 1 | 1 |" in text
    assert "fresh.txt" not in text
    assert "gone.txt" not in text
    renamed = repo.git("diff", "-M", "--numstat", old, str(result.new_tip), "--", "old name.txt", "new name.txt")
    assert renamed == "1\t1\told name.txt => new name.txt"


def test_conflict_fails_integration_and_leaves_the_branch(repo: Repo, align: Aligner) -> None:
    old = diverge(
        repo,
        "feature/auth",
        {"app.py": "def main():\n    return 2\n", "README.md": "# Mine\n"},
        {"app.py": "def main():\n    return 3\n", "README.md": "# Theirs\n"},
    )
    status_before = repo.status()

    result = align("feature/auth")["feature/auth"]

    assert result.status is Status.FAILED_INTEGRATION
    assert result.codes == ("merge_conflict_unresolvable",)
    assert result.message == "Merge conflict in README.md, app.py (unresolvable)"
    assert_untouched(repo, "feature/auth", old, status_before)
    assert repo.tip("backup-feature/auth-pre-align") == old
    data = result.to_dict()
    assert "changes_summary" not in data
    assert data["error_message"] == result.message
    text = Path(str(result.document)).read_text()
    assert "## Conflicts" in text
    assert "`app.py` (contents)" in text
    assert "Why it stopped" in text


def test_a_conflict_message_names_ten_paths_and_the_document_all(repo: Repo, align: Aligner) -> None:
    """A branch with hundreds of conflicted paths must not get an error_message of hundreds of paths."""
    paths = [f"f{number:02}.txt" for number in range(12)]
    diverge(repo, "wide", dict.fromkeys(paths, "mine\n"), dict.fromkeys(paths, "theirs\n"))

    result = align("wide")["wide"]

    assert result.message == f"Merge conflict in {', '.join(paths[:10])}, and 2 more (unresolvable)"
    text = Path(str(result.document)).read_text()
    assert all(f"- `{path}` (contents)" in text for path in paths)
    assert [culprit.path for culprit in result.culprits] == paths


def test_log_lines_of_one_branch_and_one_conflict_say_it_in_the_singular(
    repo: Repo, align: Aligner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alignment")
    diverge(repo, "f", {"app.py": "mine\n"}, {"app.py": "theirs\n"})

    align("f")

    assert any(
        message.endswith(": 1 branch over 1 target in " + str(repo.path / ".git")) for message in caplog.messages
    )
    assert "conflict causes of 'f': 1 path explained, 0 left unexplained, with 0 in-memory merges" in caplog.messages


def test_control_characters_in_paths_and_subjects_are_escaped_in_the_document(repo: Repo, align: Aligner) -> None:
    """A ``\\r`` would end the table row and let the rest render as raw HTML; ``\\x1b`` drives terminals."""
    lines = "".join(f"line {number}\n" for number in range(10))
    sneaky, title = "m\r<img src=x onerror=alert(1)>.txt", "t\x1b]0;pwned\x07\u202e.txt"
    repo.commit("main", {sneaky: lines, title: lines})
    diverge(
        repo,
        "f",
        {sneaky: lines.replace("line 1\n", "one\n"), title: lines.replace("line 1\n", "one\n")},
        {sneaky: lines.replace("line 8\n", "eight\n"), title: "theirs\n"},
    )
    repo.commit("main", {"x.txt": "x\n"}, "subject \x1b[2J\x9b\x7f")
    result = align("f")["f"]
    assert result.codes == ("merge_conflict_unresolvable",)
    text = Path(str(result.document)).read_text(encoding="utf-8")
    assert not [char for char in text if char != "\n" and (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0)]
    assert "\u202e" not in text
    assert "- `t\\x1b]0;pwned\\x07\\u202e.txt` (contents)" in text
    assert "subject \\\\x1b\\[2J\\\\x9b\\\\x7f" in text  # shown as typed: the backslash is Markdown-escaped
    repo.commit("f", {title: "theirs\n"})
    text = Path(str(align("f")["f"].document)).read_text(encoding="utf-8")
    assert "| `m\\r<img src=x onerror=alert(1)>.txt` | M | 1 | 1 |" in text


def test_entities_in_names_and_subjects_are_escaped_in_the_document(repo: Repo, align: Aligner) -> None:
    """Markdown reads ``&amp;`` as ``&`` outside code spans: a name or subject is shown as typed."""
    diverge(repo, "y/&amp;", {"g.txt": "z\n"}, {"m.txt": "x\n"})
    repo.commit("main", {"n.txt": "x\n"}, "fix &lt;tag&gt;")
    text = Path(str(align("y/&amp;")["y/&amp;"].document)).read_text(encoding="utf-8")
    assert text.startswith("# y/\\&amp; ← main\n")
    assert " fix \\&lt;tag\\&gt; — " in text


def test_a_put_back_branch_s_document_says_it_is_at_its_old_tip(repo: Repo, align: Aligner) -> None:
    """The controller puts back a branch whose process stopped unheard after moving it: the document written
    before then no longer says it completed at the merge."""
    old = diverge(repo, "f", {"f.txt": "f\n"}, {"m.txt": "m\n"})
    result = align("f")["f"]
    path = Path(str(result.document))
    message = f"alignment was interrupted (Ctrl-C) before it finished; restored 'f' to its old tip {old}"

    record_put_back(path, message, result.action, merged=str(result.new_tip))

    text = path.read_text(encoding="utf-8")
    assert "**Status:** exception (merge)\n" in text
    assert f"| New tip | `{result.new_tip}` (put back: the branch is at its old tip again) |\n" in text
    assert (
        "## Why it stopped\n\nalignment was interrupted \\(Ctrl\\-C\\) before it finished; restored 'f' to its old"
        in text
    )
    assert "completed" not in text


def test_modify_delete_conflict_names_its_kind(repo: Repo, align: Aligner) -> None:
    diverge(repo, "b", {"app.py": None}, {"app.py": "def main():\n    return 5\n"})
    result = align("b")["b"]
    assert result.status is Status.FAILED_INTEGRATION
    assert "(modify/delete)" in Path(str(result.document)).read_text()


@pytest.mark.parametrize("branch_has_the_file", [True, False])
def test_a_file_directory_conflict_is_named_by_its_real_path(
    repo: Repo, align: Aligner, branch_has_the_file: bool
) -> None:
    """git moves the file aside as ``d~<commit>``, a path in neither commit: that name was the conflict's."""
    file, directory = {"d": "a file\n"}, {"d/h.txt": "a directory\n"}
    diverge(repo, "b", *((file, directory) if branch_has_the_file else (directory, file)))
    result = align("b")["b"]
    assert result.codes == ("merge_conflict_unresolvable",)
    assert result.message == "Merge conflict in d (unresolvable)"
    assert [culprit.path for culprit in result.culprits] == ["d"]
    assert "- `d` (file/directory)" in Path(str(result.document)).read_text(encoding="utf-8")


@pytest.mark.parametrize("branch_has_the_file", [True, False])
def test_a_file_directory_conflict_with_another_conflict_names_both_causes(
    repo: Repo, align: Aligner, branch_has_the_file: bool
) -> None:
    """The cause search reads ``d/h.txt`` as a change to the conflicted ``d`` (it once ended the branch with
    ``KeyError: 'd/h.txt'``)."""
    file, directory = {"d": "a file\n"}, {"d/h.txt": "a directory\n"}
    ours, theirs = (file, directory) if branch_has_the_file else (directory, file)
    diverge(repo, "b", {**ours, "app.py": "b\n"}, {**theirs, "app.py": "main\n"})
    result = align("b")["b"]
    assert result.codes == ("merge_conflict_unresolvable",)
    assert result.message == "Merge conflict in app.py, d (unresolvable)"
    assert [(culprit.path, culprit.commit.oid) for culprit in result.culprits] == [
        ("app.py", repo.tip("main")),
        ("d", repo.tip("main")),
    ]


@pytest.mark.parametrize("pathspec_mode", [None, "GIT_LITERAL_PATHSPECS", "GIT_ICASE_PATHSPECS"])
def test_merge_that_breaks_python_fails_error_detection(
    repo: Repo, align: Aligner, monkeypatch: pytest.MonkeyPatch, pathspec_mode: str | None
) -> None:
    if pathspec_mode:  # the user's pathspec mode must not change which files the merge combined
        monkeypatch.setenv(pathspec_mode, "1")
    base_text = "START = None\n'a',\n'b',\n'c',\n'd',\n'e',\nEND = None\n"
    repo.commit("main", {"steps.py": base_text})
    old = diverge(
        repo,
        "list",
        {"steps.py": base_text.replace("START = None", "START = [").replace("END = None", "]")},
        {"steps.py": base_text.replace("'c',\n", "'c',\ndef helper():\n    return 0\n")},
    )
    status_before = repo.status()

    result = align("list")["list"]

    assert result.status is Status.FAILED_ERROR_DETECTION
    assert result.codes == ("python_syntax_error",)
    assert result.message is not None
    assert "python_syntax_error in steps.py:5" in result.message
    assert result.message.startswith("Error detection found 1 error introduced by the merge")
    assert_untouched(repo, "list", old, status_before)
    assert [finding.code for finding in result.findings] == ["python_syntax_error"]


def test_merge_that_duplicates_a_toml_key_fails_error_detection(repo: Repo, align: Aligner) -> None:
    base_text = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"
    repo.commit("main", {"conf.toml": base_text})
    diverge(repo, "toml", {"conf.toml": "x = 1\n" + base_text}, {"conf.toml": base_text + "x = 2\n"})
    result = align("toml")["toml"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("toml_parse_error",))


def test_git_not_listing_a_combined_file_fails_the_branch_instead_of_skipping_it(
    repo: Repo, align: Aligner, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.commit("main", {"both.txt": "a\nb\nc\nd\ne\n"})
    old = diverge(repo, "feature", {"both.txt": "A\nb\nc\nd\ne\n"}, {"both.txt": "a\nb\nc\nd\nE\n"})
    monkeypatch.setattr(Git, "changed_files", lambda self, old, new, paths, renames: ())
    result = align("feature")["feature"]
    assert result.status is Status.EXCEPTION
    assert "git did not list changed files ['both.txt']" in str(result.message)
    assert repo.tip("feature") == old


def test_breakage_the_target_brings_unchanged_is_not_the_branchs(repo: Repo, align: Aligner) -> None:
    diverge(repo, "feature", {"ok.py": "A = 1\n"}, {"broken.py": "def f(:\n", "bad.json": "{", "w.txt": "x  \n"})
    result = align("feature")["feature"]
    assert (result.status, result.findings) == (Status.COMPLETED, ())


def test_breakage_already_on_the_target_is_a_warning(repo: Repo, align: Aligner) -> None:
    repo.commit("main", {"data.json": '{\n"a": 1,\n"b": 2,\n"c": 3,\n"d": 4\n}\n'})
    diverge(
        repo,
        "feature",
        {"data.json": '{\n"a": 10,\n"b": 2,\n"c": 3,\n"d": 4\n}\n'},
        {"data.json": '{\n"a": 1,\n"b": 2,\n"c": 3,\n"d": 4,,\n}\n'},
    )
    result = align("feature")["feature"]
    assert result.status is Status.COMPLETED
    assert [(finding.code, finding.severity.value, finding.introduced) for finding in result.findings] == [
        ("json_parse_error", "warning", False)
    ]
    assert "before the merge too" in result.findings[0].message


def test_the_tip_is_checked_only_for_what_the_target_does_not_explain(
    repo: Repo, align: Aligner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grammar that cannot read a file finds the same error in every version of it: the target's version,
    shared by the target's branches, explains it, and the tip's version is not parsed again."""
    checked: list[bytes] = []
    original = alignment.detect.check_file

    def recording(path: str, content: bytes, settings: Settings | None = None) -> list[Finding]:
        checked.append(content)
        return original(path, content, settings)

    monkeypatch.setattr(alignment.detect, "check_file", recording)
    lines = ["a: [", "b: 2", "c: 3", "d: 4", "e: 5", "f: 6"]
    repo.commit("main", {"cfg.yaml": "\n".join(lines) + "\n"})
    tip_version = "\n".join([*lines[:-1], "f: 60"]) + "\n"
    diverge(repo, "feature", {"cfg.yaml": tip_version}, {"cfg.yaml": "\n".join(["a: [", "b: 20", *lines[2:]]) + "\n"})
    result = align("feature")["feature"]
    assert [(finding.code, finding.introduced) for finding in result.findings] == [("yaml_parse_error", False)]
    assert tip_version.encode() not in checked
    assert len(checked) == 2  # the merged version and the target's

    checked.clear()
    repo.commit("main", {"a.c": "int a(void) { return 1; }\n\n\n\nint b(void) { return 2; }\n"})
    diverge(
        repo,
        "other",
        {"a.c": "int a(void) { return 1; }\nint x(void) { return 3; }\n\n\n\nint b(void) { return 2; }\n"},
        {"a.c": "int a(void) { return 1; }\n\n\n\nint b(void) { return 2; }\nint x(void) { return 4; }\n"},
    )
    result = align("other")["other"]
    assert [(finding.code, finding.introduced) for finding in result.findings] == [("duplicate_definition", True)]
    assert len(checked) == 3  # the target's version does not have it: the tip's is checked too


def test_breakage_already_on_the_branch_is_a_warning(repo: Repo, align: Aligner) -> None:
    repo.commit("main", {"cfg.yaml": "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\n"})
    diverge(
        repo, "feature", {"cfg.yaml": "a: [\nb: 2\nc: 3\nd: 4\ne: 5\n"}, {"cfg.yaml": "a: 1\nb: 2\nc: 3\nd: 4\ne: 6\n"}
    )
    result = align("feature")["feature"]
    assert result.status is Status.COMPLETED
    assert [(finding.code, finding.introduced) for finding in result.findings] == [("yaml_parse_error", False)]


def test_fast_forward_when_the_branch_has_no_own_commits(repo: Repo, align: Aligner) -> None:
    old = repo.branch("behind", "main")
    repo.commit("main", {"more.txt": "more\n"})
    result = align("behind")["behind"]
    assert (result.status, result.action) == (Status.COMPLETED, Action.FAST_FORWARD)
    assert repo.tip("behind") == repo.tip("main") == result.new_tip
    assert repo.tip("backup-behind-pre-align") == old
    text = Path(str(result.document)).read_text()
    assert repo.tip("main")[:12] in text
    assert f"`git diff --stat {old} {result.new_tip}`" in text


def test_up_to_date_branch_is_left_alone_without_a_backup(repo: Repo, align: Aligner) -> None:
    tip = repo.commit("ahead", {"x.txt": "x\n"}, parent=repo.tip("main"))
    result = align("ahead")["ahead"]
    assert (result.status, result.action, result.new_tip) == (Status.COMPLETED, Action.UP_TO_DATE, tip)
    assert repo.tip("ahead") == tip
    assert not repo.exists("backup-ahead-pre-align")
    assert "already contains the target" in Path(str(result.document)).read_text()


@pytest.mark.parametrize(
    ("branch", "target", "code", "message"),
    [
        ("missing", "main", "branch_not_found", "branch 'missing' does not exist"),
        ("feature", "no-such-target", "target_not_found", "target branch 'no-such-target' does not exist"),
    ],
)
def test_missing_branch_or_target(
    repo: Repo, align: Aligner, branch: str, target: str, code: str, message: str
) -> None:
    repo.branch("feature", "main")
    result = align((branch, target))[branch]
    assert (result.status, result.codes, result.message) == (Status.FAILED_INTEGRATION, (code,), message)
    assert result.document is None
    assert not repo.exists(f"backup-{branch}-pre-align")


def test_names_are_looked_up_as_exact_refs_never_by_gits_name_guessing(repo: Repo, align: Aligner) -> None:
    """``ghost`` is not ``refs/heads/refs/heads/ghost`` (which git's guessing would pick for
    ``refs/heads/ghost``), for a branch, a target and a backup alike."""
    elsewhere = diverge(repo, "refs/heads/ghost", {"g.txt": "g\n"}, {"m.txt": "m\n"})
    repo.branch("refs/heads/refs/heads/other", "main")
    old = repo.commit("real", {"r.txt": "r\n"}, parent=elsewhere)
    repo.branch("refs/heads/backup-real-pre-align", old)  # shadows the backup name at the very commit
    refs = repo.git("for-each-ref")
    results = align("ghost", ("real", "other"))
    assert results["ghost"].codes == ("branch_not_found",)
    assert results["ghost"].backup_branch is None
    assert results["real"].codes == ("target_not_found",)
    assert repo.git("for-each-ref") == refs  # no backup was made for either
    results = align("real")
    assert results["real"].status is Status.COMPLETED
    assert results["real"].backup_branch == "backup-real-pre-align"
    assert results["real"].notes == ()  # made, not "reused"
    assert repo.git("for-each-ref", "--format=%(objectname)", "refs/heads/backup-real-pre-align") == old


def test_branch_checked_out_in_another_worktree_is_not_touched(repo: Repo, align: Aligner, tmp_path: Path) -> None:
    old = diverge(repo, "busy", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    worktree = tmp_path / "elsewhere"
    repo.git("worktree", "add", "-q", str(worktree), "busy")
    result = align("busy")["busy"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("branch_checked_out",))
    assert str(worktree) in str(result.message)
    assert "checked out" in str(result.message)
    assert repo.tip("busy") == old
    assert not repo.exists("backup-busy-pre-align")  # refused before anything was made for it


def test_the_users_checked_out_branch_is_not_touched(repo: Repo, align: Aligner) -> None:
    repo.git("checkout", "-q", "-b", "mine")
    repo.commit("main", {"b.txt": "b\n"})
    result = align("mine")["mine"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("branch_checked_out",))
    assert str(repo.path) in str(result.message)


@pytest.mark.parametrize("where", ["another worktree", "the user's worktree"])
def test_a_checked_out_branch_already_up_to_date_is_completed_untouched(
    repo: Repo, align: Aligner, tmp_path: Path, where: str
) -> None:
    """Nothing moves a branch that already contains its target (``git merge`` there says "Already up to
    date."), so no worktree needs protecting from it: completed, no backup, as when it is not checked out."""
    tip = repo.commit("ahead", {"x.txt": "x\n"}, parent=repo.tip("main"))
    if where == "another worktree":
        repo.git("worktree", "add", "-q", str(tmp_path / "elsewhere"), "ahead")
    else:
        repo.git("checkout", "-q", "ahead")
    status_before = repo.status()
    result = align("ahead")["ahead"]
    assert (result.status, result.action, result.codes) == (Status.COMPLETED, Action.UP_TO_DATE, ())
    assert repo.tip("ahead") == result.new_tip == tip
    assert not repo.exists("backup-ahead-pre-align")
    assert repo.status() == status_before


@pytest.mark.parametrize("kind", ["rebase-merge", "rebase-apply"])  # rebase-apply: `git am`, `rebase --apply`
def test_branch_being_rebased_elsewhere_is_not_touched(repo: Repo, align: Aligner, tmp_path: Path, kind: str) -> None:
    diverge(repo, "rebasing", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    admin = Path(repo.git("rev-parse", "--absolute-git-dir")) / kind
    admin.mkdir()
    (admin / "head-name").write_text("refs/heads/rebasing\n")
    result = align("rebasing")["rebasing"]
    assert result.codes == ("branch_checked_out",)
    assert "is rebasing in the worktree" in str(result.message)


class ChecksItOutMeanwhile(ChangeErrorDetector):
    """While the merge is being checked (after prepare's check), someone checks the branch out."""

    def __init__(self, repo: Repo, worktree: Path) -> None:
        super().__init__(CONFIG)
        self.repo = repo
        self.worktree = worktree

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        self.repo.git("worktree", "add", "-q", str(self.worktree), context.branch)
        return super().detect(context, integration)


def test_a_branch_checked_out_after_the_first_check_is_refused_just_before_the_move(
    repo: Repo, align: Aligner, tmp_path: Path
) -> None:
    old = diverge(repo, "late", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    worktree = tmp_path / "checked-out-meanwhile"
    detector = ChecksItOutMeanwhile(repo, worktree)
    components = Components(MergeOrRebaseIntegrator(CONFIG), detector, MarkdownDocGenerator(CONFIG))
    result = align("late", components=components)["late"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("branch_checked_out",))
    assert str(worktree) in str(result.message)
    assert repo.tip("late") == old
    assert Repo(worktree).git("rev-parse", "HEAD") == old
    assert Repo(worktree).status() == ""


class MovesTheBranch(MergeOrRebaseIntegrator):
    """Integrates normally, but first another 'process' commits to the branch (a concurrent writer)."""

    def __init__(self, repo: Repo) -> None:
        super().__init__(Settings())
        self.repo = repo
        self.their_commit = ""

    def integrate(self, context: BranchContext) -> Integration:
        self.their_commit = self.repo.commit(context.branch, {"theirs.txt": "their work\n"})
        return super().integrate(context)


def test_a_branch_moved_meanwhile_keeps_their_commit(repo: Repo, align: Aligner) -> None:
    diverge(repo, "contended", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    mover = MovesTheBranch(repo)
    components = Components(mover, ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = align("contended", components=components)["contended"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("branch_moved",))
    assert mover.their_commit in str(result.message)
    assert repo.tip("contended") == mover.their_commit


class Explodes:
    def detect(self, context: BranchContext, integration: Integration) -> tuple[()]:
        raise RuntimeError("detector crashed")


def test_an_unexpected_error_is_an_exception_result(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "x", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    components = Components(MergeOrRebaseIntegrator(CONFIG), Explodes(), MarkdownDocGenerator(CONFIG))
    result = align("x", components=components)["x"]
    assert (result.status, result.codes) == (Status.EXCEPTION, ("unexpected_error",))
    assert result.message == "RuntimeError: detector crashed"
    assert repo.tip("x") == old
    assert "detector crashed" in Path(str(result.document)).read_text()


def test_existing_backup_at_the_same_commit_is_reused(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    repo.branch("backup-f-pre-align", old)
    result = align("f")["f"]
    assert result.backup_branch == "backup-f-pre-align"
    assert any("reused existing backup" in note for note in result.notes)


def test_existing_backup_elsewhere_is_kept_and_a_suffixed_one_made(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    elsewhere = repo.branch("backup-f-pre-align", "main")
    repo.branch("backup-f-pre-align-2", "main")
    result = align("f", config=settings(auto_cleanup_backups=True))["f"]
    assert result.status is Status.COMPLETED
    assert repo.tip("backup-f-pre-align") == elsewhere
    assert result.backup_branch == "backup-f-pre-align-3"
    assert any("exists at another commit and was kept" in note for note in result.notes)
    # auto cleanup removed only the backup this run created, and only after success
    assert not repo.exists("backup-f-pre-align-3")
    assert repo.exists("backup-f-pre-align")
    assert repo.exists("backup-f-pre-align-2")
    assert repo.tip("f") != old


def test_a_backup_name_absent_when_the_run_started_is_created_without_reading_it(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One ``cat-file`` round trip less per branch: the run's snapshot already says no such branch exists."""
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    git = Git(RepoLocation.discover(repo.path), timeout=10)
    read: list[str] = []
    resolve = git.resolve_branch
    monkeypatch.setattr(git, "resolve_branch", lambda name: read.append(name) or resolve(name))
    try:
        backup = create_backup(git, "backup", "f", old, existing=frozenset({"backup-g-pre-align"}))
        assert (backup.name, backup.created, read) == ("backup-f-pre-align", True, [])
        assert repo.tip("backup-f-pre-align") == old
        unknown = create_backup(git, "backup", "f", old)  # nothing known: read, found at the old tip, reused
        assert (unknown.created, read) == (False, ["backup-f-pre-align"])
    finally:
        git.close()


def test_a_backup_made_since_the_run_started_is_still_never_overwritten(repo: Repo) -> None:
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    elsewhere = repo.branch("backup-f-pre-align", "main")  # made after the snapshot that found none
    git = Git(RepoLocation.discover(repo.path), timeout=10)
    try:
        backup = create_backup(git, "backup", "f", old, existing=frozenset())
        reused = create_backup(git, "backup", "f", old, existing=frozenset())
    finally:
        git.close()
    assert (backup.name, backup.created) == ("backup-f-pre-align-2", True)
    assert backup.note == "'backup-f-pre-align' exists at another commit and was kept; backup is 'backup-f-pre-align-2'"
    assert repo.tip("backup-f-pre-align") == elsewhere
    assert (reused.name, reused.created) == ("backup-f-pre-align-2", False)


def test_the_snapshot_keeps_the_branches_named_like_a_backup(repo: Repo, tmp_path: Path) -> None:
    repo.branch("backup-x-pre-align", "main")
    repo.branch("feature", "main")
    branches = parse_branches({"branches": [entry("feature")]}, "t")
    setup = set_up_run(Settings(), branches, repo.path, reports_dir=tmp_path / "r")
    setup.discard_scratch()
    assert setup.snapshot.backups == frozenset({"backup-x-pre-align"})
    assert RunSetup.from_json(setup.to_json()).snapshot == setup.snapshot


def test_a_branch_listed_for_alignment_is_never_taken_as_a_backup(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "a", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    repo.branch("backup-a-pre-align", old)
    results = align("a", "backup-a-pre-align")
    assert [result.status for result in results.values()] == [Status.COMPLETED, Status.COMPLETED]
    assert results["a"].backup_branch == "backup-a-pre-align-2"
    assert results["a"].notes == (
        "'backup-a-pre-align' is itself listed for alignment and was not used; backup is 'backup-a-pre-align-2'",
    )
    assert repo.tip("backup-a-pre-align-2") == old
    assert repo.tip("backup-a-pre-align") == results["backup-a-pre-align"].new_tip != old


@pytest.mark.parametrize("order", [("a", "a-pre-align/b"), ("a-pre-align/b", "a")])
def test_a_backup_name_that_is_a_folder_of_another_listed_branchs_backup_is_passed_over(
    repo: Repo, align: Aligner, make_input: Callable[..., Path], tmp_path: Path, order: tuple[str, str]
) -> None:
    """``backup-a-pre-align`` and ``backup-a-pre-align/b-pre-align``: git cannot hold both. Whichever came
    second once failed, told to rename the run's own backup; the plan predicted both to pass."""
    old = {name: diverge(repo, name, {f"{name}.txt": "mine\n"}, {}) for name in order}
    plan = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").plan(make_input(*order), repo.path)
    results = align(*order)
    assert [branch["status"] for branch in plan["orchestration_results"]["main"]["branches"]] == ["completed"] * 2
    assert [results[name].status for name in order] == [Status.COMPLETED] * 2
    assert (results["a"].backup_branch, results["a-pre-align/b"].backup_branch) == (
        "backup-a-pre-align-2",
        "backup-a-pre-align/b-pre-align",
    )
    assert results["a"].notes == (
        "'backup-a-pre-align' is a folder of 'backup-a-pre-align/b-pre-align', another listed branch's backup "
        "name, and was not used; backup is 'backup-a-pre-align-2'",
    )
    assert {name: repo.tip(str(results[name].backup_branch)) for name in order} == old


@pytest.mark.parametrize(
    "name", ["x" * 240, "x" * 250, "ü" * 125, "deep/" + "y" * 250], ids=["240", "250", "utf8", "deep"]
)
def test_long_valid_names_get_a_backup_whose_name_fits(repo: Repo, align: Aligner, name: str) -> None:
    """git's loose refs are files: each component of a ref name, plus ``.lock``, must fit in 255 bytes."""
    old = diverge(repo, name, {"a.txt": "a\n"}, {"b.txt": "b\n"})
    result = align(name)[name]
    assert result.status is Status.COMPLETED, result.message
    backup = str(result.backup_branch)
    assert max(len(part.encode()) for part in backup.split("/")) <= 250
    assert backup.startswith("backup-")
    assert backup.endswith("-pre-align")
    assert repo.tip(backup) == old
    repo.git("update-ref", f"refs/heads/{name}", old)  # again from the same tip: the same backup is reused
    again = align(name)[name]
    assert (again.backup_branch, again.notes) == (
        backup,
        (f"reused existing backup '{backup}' (already at the old tip)",),
    )


def test_no_backup_when_disabled_and_custom_prefix(repo: Repo, align: Aligner) -> None:
    diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    diverge(repo, "g", {"a.txt": "a\n"}, {"c.txt": "c\n"})
    assert align("f", config=settings(enable_backup_branches=False))["f"].backup_branch is None
    assert align("g", config=settings(backup_branch_prefix="safety"))["g"].backup_branch == "safety-g-pre-align"


def test_auto_cleanup_keeps_the_backup_of_a_failed_branch(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "f", {"app.py": "1\n"}, {"app.py": "2\n"})
    result = align("f", config=settings(auto_cleanup_backups=True))["f"]
    assert result.status is Status.FAILED_INTEGRATION
    assert repo.tip("backup-f-pre-align") == old


def test_backup_that_cannot_be_created_fails_the_branch(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    repo.branch("backup-f-pre-align/x", "main")  # a directory/file ref conflict for every suffix
    for suffix in range(2, 21):
        repo.branch(f"backup-f-pre-align-{suffix}/x", "main")
    result = align("f")["f"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("backup_failed",))
    reason = "fatal: prepare: cannot lock ref 'refs/heads/backup-f-pre-align-20'"  # git's reason, quoted whole
    assert str(result.message).startswith(f"could not create a backup of 'f' at {old[:12]}: {reason}: ")
    assert repo.tip("f") == old


def test_a_branch_named_like_the_backups_folder_fails_at_once_naming_it(
    repo: Repo, align: Aligner, make_input: Callable[..., Path], tmp_path: Path
) -> None:
    """The plan predicts the failure the run meets, with the same message."""
    old = diverge(repo, "f/x", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    repo.branch("backup-f", "main")  # refs/heads/backup-f is a file where backup-f/x-pre-align needs a folder
    message = (
        f"could not create a backup of 'f/x' at {old[:12]}: the branch 'backup-f' blocks 'backup-f/x-pre-align' "
        "(git cannot have a branch inside another branch's name); rename 'backup-f' or set "
        "orchestration.backup_branch_prefix"
    )
    plan = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").plan(make_input("f/x"), repo.path)
    (predicted,) = plan["orchestration_results"]["main"]["branches"]
    assert (predicted["status"], predicted["errors_detected"]) == ("failed_integration", ["backup_failed"])
    assert predicted["error_message"] == message
    result = align("f/x")["f/x"]
    assert (result.status, result.codes, result.message) == (Status.FAILED_INTEGRATION, ("backup_failed",), message)
    assert repo.tip("f/x") == old


def test_a_plan_finds_the_backups_folder_in_the_snapshot(
    repo: Repo, make_input: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan asks git nothing per branch to find a blocker named with the backup prefix: the run's snapshot
    lists those branches."""
    diverge(repo, "f/x", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    diverge(repo, "g/y", {"c.txt": "c\n"}, {"d.txt": "d\n"})
    repo.branch("backup-f", "main")
    resolve_branch, read = Git.resolve_branch, []

    def reading(self: Git, name: str) -> str | None:
        read.append(name)
        return resolve_branch(self, name)

    monkeypatch.setattr(Git, "resolve_branch", reading)
    plan = BranchAlignmentOrchestrator(reports_dir=tmp_path / "reports").plan(make_input("f/x", "g/y"), repo.path)
    codes = {
        branch["branch_name"]: branch["errors_detected"] for branch in plan["orchestration_results"]["main"]["branches"]
    }
    assert codes == {"f/x": ["backup_failed"], "g/y": []}
    assert not {"backup-f", "backup-g"} & set(read)


def test_unrelated_histories_are_not_merged(repo: Repo, align: Aligner) -> None:
    repo.commit("orphan", {"other.txt": "x\n"}, parents=())
    result = align("orphan")["orphan"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("unrelated_histories",))


def test_under_rebase_a_branch_with_no_common_history_is_refused_as_its_plan_says(
    repo: Repo, make_input: Callable[..., Path], tmp_path: Path
) -> None:
    """``git rebase`` would graft the whole orphan onto the target; refused as ``git merge`` refuses it, by the
    run as by its plan, before any worktree is made."""
    old = repo.commit("orphan", {"other.txt": "x\n"}, parents=())
    repo.commit("main", {"m.txt": "m\n"})
    config = settings(integration_strategy="rebase")
    orchestrator = BranchAlignmentOrchestrator(config, reports_dir=tmp_path / "reports")
    expected = {
        "status": "failed_integration",
        "errors_detected": ["unrelated_histories"],
        "action": "rebase",
        "error_message": "'orphan' and 'main' have no common history; not merged",
    }
    for data in (orchestrator.plan(make_input("orphan"), repo.path), orchestrator.run(make_input("orphan"), repo.path)):
        branch = data["orchestration_results"]["main"]["branches"][0]
        assert {key: branch[key] for key in expected} == expected
    assert repo.tip("orphan") == old
    assert len(repo.git("worktree", "list").splitlines()) == 1


def test_a_rebase_names_the_commits_it_dropped(repo: Repo, make_input: Callable[..., Path], tmp_path: Path) -> None:
    """As ``git rebase`` does (and warns), a commit already on the target and one that becomes empty are not
    replayed: the result's notes, the branch's log and its change document say which, and of how many."""
    base = repo.tip("main")
    hotfix = repo.commit("gone", {"fix.txt": "fix\n"}, "hotfix", parent=base)
    same = repo.commit("partly", {"app.py": "def main():\n    return 2\n"}, "return 2 (main too)", parent=base)
    repo.commit("partly", {"own.txt": "own\n"}, "own work")
    repo.commit("kept", {"kept.txt": "k\n"}, "kept work", parent=base)
    repo.commit("main", {"fix.txt": "fix\n"}, "hotfix, cherry-picked")
    target = repo.commit("main", {"app.py": "def main():\n    return 2\n", "m.txt": "m\n"}, "return 2, and m")
    config = settings(integration_strategy="rebase")
    data = BranchAlignmentOrchestrator(config, reports_dir=tmp_path / "reports").run(
        make_input("gone", "partly", "kept"), repo.path
    )
    results = {branch["branch_name"]: branch for branch in data["orchestration_results"]["main"]["branches"]}
    why = "dropped by the rebase (already on the target or empty)"
    assert {name: result["notes"] for name, result in results.items()} == {
        "gone": [f"1 of its 1 commit {why}: {hotfix[:12]}"],
        "partly": [f"1 of its 2 commits {why}: {same[:12]}"],
        "kept": [],
    }
    assert {result["status"] for result in results.values()} == {"completed"}
    assert repo.tip("gone") == target
    assert repo.git("rev-list", "--format=%s", "--no-commit-header", f"{target}..partly") == "own work"
    logs = tmp_path / "reports" / "runs" / data["run_id"] / "logs"
    for name, commit in (("gone", hotfix), ("partly", same)):
        assert f"{why}: {commit[:12]}" in (logs / f"{name}.log").read_text()
        document = Path(results[name]["document"]).read_text()
        assert "## Notes" in document
        assert f"dropped by the rebase \\(already on the target or empty\\): {commit[:12]}" in document
    assert "## Notes" not in Path(results["kept"]["document"]).read_text()


def test_the_reflog_names_the_run_that_moved_the_branch_and_made_its_backup(repo: Repo, align: Aligner) -> None:
    """As ``git merge`` writes what moved a branch in its reflog, for whoever recovers with git."""
    diverge(repo, "feature", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    result = align("feature")["feature"]
    trailer = repo.git("log", "-1", "--format=%(trailers:key=Aligned-By,valueonly)", str(result.new_tip))
    assert trailer.startswith("branch-alignment run ")
    for ref in ("feature", "backup-feature-pre-align"):
        assert repo.git("reflog", "show", "-1", "--format=%gs", ref) == trailer


def test_git_timeout_is_a_timeout_result(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "slow", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    result = align("slow", config=settings(integration_timeout_seconds=0.000001))["slow"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("timeout",))
    assert repo.tip("slow") == old


def test_branch_moved_after_the_snapshot_is_classified_fresh(repo: Repo, tmp_path: Path) -> None:
    """The snapshot said 'behind'; the branch got a commit before its turn: it is merged, not reset."""
    repo.branch("late", "main")
    repo.commit("main", {"m.txt": "m\n"})
    setup = set_up_run(
        Settings(), parse_branches({"branches": [entry("late")]}, "t"), repo.path, reports_dir=tmp_path / "reports"
    )
    assert setup.snapshot.relation("late") is Action.FAST_FORWARD
    own = repo.commit("late", {"own.txt": "mine\n"})
    try:
        with Runtime(setup) as runtime:
            result = runtime.align(setup.branches.branches[0])
    finally:
        setup.discard_scratch()
    assert (result.status, result.action) == (Status.COMPLETED, Action.MERGE)
    assert repo.git("rev-parse", f"{result.new_tip}^1") == own


def test_standalone_merge_needs_no_worktree(repo: Repo, align: Aligner) -> None:
    diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    align("f")
    assert len(repo.git("worktree", "list").splitlines()) == 1


def test_an_interrupt_inside_the_compare_and_swap_is_undone(
    repo: Repo, align: Aligner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signal arrives after git committed the move but before the call returned."""
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    update_refs = Git.update_refs

    def commit_then_interrupt(self: Git, updates: list[RefUpdate]) -> None:
        update_refs(self, updates)
        if updates[0].ref == "refs/heads/f" and updates[0].old == old:
            raise KeyboardInterrupt

    monkeypatch.setattr(Git, "update_refs", commit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        align("f")
    assert repo.tip("f") == old
    assert repo.tip("backup-f-pre-align") == old


def test_submodule_and_symlink_changes_are_not_read_as_files(repo: Repo, align: Aligner) -> None:
    base = repo.tip("main")
    old = repo.commit("f", {"a.txt": "a\n"}, parent=base)
    index = repo.path.parent / ".special-index"
    env = {"GIT_INDEX_FILE": str(index)}
    repo.git("read-tree", "main", env=env)
    link = repo.git("hash-object", "-w", "--stdin", input="target.py")
    repo.git("update-index", "--add", "--cacheinfo", f"120000,{link},link.py", env=env)
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},vendor/lib", env=env)
    tree = repo.git("write-tree", env=env)
    index.unlink()
    repo.git("update-ref", "refs/heads/main", repo.git("commit-tree", tree, "-p", base, input="special\n"))
    result = align("f")["f"]
    assert (result.status, result.findings) == (Status.COMPLETED, ())
    assert repo.tip("f") != old


class NoCommit(MergeOrRebaseIntegrator):
    def integrate(self, context: BranchContext) -> Integration:
        return Integration(Action.MERGE, None)


def test_an_integration_without_a_commit_or_conflicts_is_a_failure(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    components = Components(NoCommit(CONFIG), ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = align("f", components=components)["f"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("integration_failed",))
    assert repo.tip("f") == old


class Replaces(MergeOrRebaseIntegrator):
    """Integrates like the default, then returns the commit ``replace`` makes of the context and its result."""

    def __init__(self, replace: Callable[[BranchContext, str], str]) -> None:
        super().__init__(CONFIG)
        self.replace = replace

    def integrate(self, context: BranchContext) -> Integration:
        done = super().integrate(context)
        return Integration(done.action, self.replace(context, str(done.new_tip)))


@pytest.mark.parametrize("behind", [False, True], ids=["diverged, moved to the target", "behind, moved to a root"])
def test_an_integration_that_drops_the_branchs_commits_fails_and_leaves_the_branch(
    repo: Repo, align: Aligner, behind: bool
) -> None:
    """A custom integrator's new tip that lacks the old tip would take the branch's commits off it (here with
    no backup to hold them): refused before the move, whatever the integrator called its action."""
    if behind:
        old = repo.branch("f", "main")
        repo.commit("main", {"b.txt": "b\n"})
    else:
        old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    root = repo.git("commit-tree", "main^{tree}", input="a root commit\n")
    integrator = Replaces(lambda context, _: root if behind else context.target_commit)
    components = Components(integrator, ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = align("f", config=settings(enable_backup_branches=False), components=components)["f"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("integration_failed",))
    dropped = root if behind else repo.tip("main")
    assert result.message == (
        f"integration of 'main' into 'f' produced {dropped}, which does not contain the branch's tip {old}: "
        "moving there would drop its commits; not moved"
    )
    assert (repo.tip("f"), result.new_tip) == (old, None)


class CallsTheTargetAMerge(MergeOrRebaseIntegrator):
    """Whatever the strategy, says it merged, and gives the target commit."""

    def integrate(self, context: BranchContext) -> Integration:
        return Integration(Action.MERGE, context.target_commit)


def test_under_the_rebase_strategy_a_commit_called_a_merge_must_contain_the_old_tip(repo: Repo, align: Aligner) -> None:
    """Only a rebase is exempt under the rebase strategy: an integrator that calls the target commit a merge
    there would take the branch's commits off it, and is refused as under the merge strategy."""
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    components = Components(CallsTheTargetAMerge(CONFIG), ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = align("f", config=settings(integration_strategy="rebase"), components=components)["f"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("integration_failed",))
    assert repo.tip("f") == old


def test_an_integration_that_contains_the_old_tip_further_back_moves_the_branch(repo: Repo, align: Aligner) -> None:
    """A merge whose parent is not the old tip but a commit on top of it keeps every commit: accepted."""
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})

    def on_top(context: BranchContext, merge: str) -> str:
        extra = repo.git("commit-tree", f"{context.old_tip}^{{tree}}", "-p", context.old_tip, input="extra\n")
        return repo.git("commit-tree", f"{merge}^{{tree}}", "-p", extra, "-p", context.target_commit, input="m\n")

    components = Components(Replaces(on_top), ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = align("f", config=settings(enable_backup_branches=False), components=components)["f"]
    assert result.status is Status.COMPLETED
    assert repo.tip("f") == result.new_tip != old
    assert repo.git("merge-base", "--is-ancestor", old, "f") == ""


def test_the_default_merge_and_fast_forward_are_known_to_keep_the_old_tip_without_asking_git(
    repo: Repo, align: Aligner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge's parents (from the commit it wrote) and the snapshot's fast-forward say it: no extra process."""
    diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    repo.branch("behind", "main~1")
    asked: list[tuple[str, str]] = []
    monkeypatch.setattr(Git, "is_ancestor", lambda self, ancestor, descendant: asked.append((ancestor, descendant)))
    results = align("f", "behind")
    assert [result.status for result in results.values()] == [Status.COMPLETED] * 2
    assert asked == []


class ListsConflicts(MergeOrRebaseIntegrator):
    """Integrates like the default, with the conflicts as a list."""

    def integrate(self, context: BranchContext) -> Integration:
        done = super().integrate(context)
        return dataclasses.replace(done, conflicts=list(done.conflicts))  # type: ignore[arg-type]


def test_an_integration_may_list_its_conflicts_as_detect_may_list_its_findings(repo: Repo, align: Aligner) -> None:
    """A list of Conflict is taken as a tuple: the branch fails with its conflict, as with the default."""
    old = diverge(repo, "f", {"app.py": "1\n"}, {"app.py": "2\n"})
    components = Components(ListsConflicts(CONFIG), ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = align("f", components=components)["f"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("merge_conflict_unresolvable",))
    assert result.message == "Merge conflict in app.py (unresolvable)"
    assert [culprit.path for culprit in result.culprits] == ["app.py"]
    assert repo.tip("f") == old


class NoneDetector(ChangeErrorDetector):
    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        return None  # type: ignore[return-value]


class WordsDetector(ChangeErrorDetector):
    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        return ["looks wrong"]  # type: ignore[return-value]


class DictIntegrator(MergeOrRebaseIntegrator):
    def integrate(self, context: BranchContext) -> Integration:
        return {"new_tip": context.target_commit}  # type: ignore[return-value]


class NumberTipIntegrator(MergeOrRebaseIntegrator):
    def integrate(self, context: BranchContext) -> Integration:
        return Integration(Action.MERGE, 42)  # type: ignore[arg-type]


class NumberDocGenerator(MarkdownDocGenerator):
    def document(self, record: ChangeRecord) -> str:
        super().document(record)
        return 42  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("key", "component", "said"),
    [
        ("error_detector", NoneDetector(CONFIG), "detect() returned None, expected a tuple of Finding"),
        ("error_detector", WordsDetector(CONFIG), "detect() returned ['looks wrong'], expected a tuple of Finding"),
        ("integration_utility", DictIntegrator(CONFIG), "integrate() returned {'new_tip': '"),
        (
            "integration_utility",
            NumberTipIntegrator(CONFIG),
            "integrate() returned Integration(action=<Action.MERGE: 'merge'>, new_tip=42, conflicts=(), notes=()), "
            "expected",
        ),
        ("doc_generator", NumberDocGenerator(CONFIG), "document() returned 42, expected the document's path, a str"),
    ],
    ids=["detect None", "detect strings", "integrate dict", "integrate a number as tip", "document a number"],
)
def test_a_component_returning_the_wrong_type_is_its_branchs_exception_before_anything_moves(
    repo: Repo, align: Aligner, key: str, component: Any, said: str
) -> None:
    """Caught where the pipeline receives it: the branch stays, and its result is one a report can write."""
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    defaults = Components(MergeOrRebaseIntegrator(CONFIG), ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = align("f", components=dataclasses.replace(defaults, **{key: component}))["f"]
    assert (result.status, result.codes) == (Status.EXCEPTION, ("unexpected_error",))
    assert str(result.message).startswith(f"{key} {__name__}.{type(component).__name__}: {said}")
    assert repo.tip("f") == old
    assert json.loads(json.dumps(result.to_dict()))["error_message"] == result.message


class PathDocGenerator(MarkdownDocGenerator):
    def document(self, record: ChangeRecord) -> str:
        return Path(super().document(record))  # type: ignore[return-value]


def test_a_change_document_given_as_a_path_object_is_taken_as_its_path(repo: Repo, align: Aligner) -> None:
    diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    components = Components(MergeOrRebaseIntegrator(CONFIG), ChangeErrorDetector(CONFIG), PathDocGenerator(CONFIG))
    result = align("f", components=components)["f"]
    assert result.status is Status.COMPLETED
    assert isinstance(result.document, str)
    assert Path(result.document).is_file()


def test_a_locked_ref_is_reported_as_locked_not_moved(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "locked", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    lock = Path(repo.git("rev-parse", "--git-common-dir"))
    lock = (repo.path / lock if not lock.is_absolute() else lock) / "refs" / "heads" / "locked.lock"

    class LocksFirst(MergeOrRebaseIntegrator):
        def integrate(self, context: BranchContext) -> Integration:
            lock.write_text("")  # another git process holds the ref from now on
            return super().integrate(context)

    components = Components(LocksFirst(CONFIG), ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))
    result = align("locked", components=components)["locked"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("ref_locked",))
    assert "locked.lock" in str(result.message)
    assert repo.tip("locked") == old
    assert lock.exists()  # someone else's lock: not ours to remove


def test_auto_cleanup_keeps_a_backup_the_run_did_not_make(repo: Repo, align: Aligner) -> None:
    """An existing backup at the old tip is reused, and it is not this run's to delete."""
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    repo.branch("backup-f-pre-align", old)
    result = align("f", config=settings(auto_cleanup_backups=True))["f"]
    assert result.status is Status.COMPLETED
    assert repo.tip("backup-f-pre-align") == old
    assert not any("removed" in note for note in result.notes)


def test_auto_cleanup_keeps_the_backup_of_a_rebased_branch(repo: Repo, align: Aligner) -> None:
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    result = align("f", config=settings(integration_strategy="rebase", auto_cleanup_backups=True))["f"]
    assert result.status is Status.COMPLETED
    assert repo.tip("backup-f-pre-align") == old
    assert any("holds commits the new tip does not contain" in note for note in result.notes)
    assert "| Backup | `backup-f-pre-align` |" in Path(str(result.document)).read_text().splitlines()


@pytest.mark.parametrize(("strategy", "removed"), [("merge", True), ("rebase", False)])
def test_auto_cleanup_asks_git_about_the_backup_only_after_a_rebase(
    repo: Repo, align: Aligner, monkeypatch: pytest.MonkeyPatch, strategy: str, removed: bool
) -> None:
    """A merge's new tip was checked to contain the old tip, where the backup is: no extra process. A rebase's
    new tip was not, so git is asked whether the backup's commits stay reachable."""
    old = diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    asked: list[tuple[str, str]] = []
    is_ancestor = Git.is_ancestor

    def counted(self: Git, ancestor: str, descendant: str) -> bool:
        asked.append((ancestor, descendant))
        return is_ancestor(self, ancestor, descendant)

    monkeypatch.setattr(Git, "is_ancestor", counted)
    result = align("f", config=settings(integration_strategy=strategy, auto_cleanup_backups=True))["f"]
    assert result.status is Status.COMPLETED
    assert repo.exists("backup-f-pre-align") is not removed
    assert asked == ([] if removed else [(old, result.new_tip)])


def test_auto_cleanup_says_in_the_change_document_that_the_backup_is_gone(repo: Repo, align: Aligner) -> None:
    """The document, written before the move, named the backup that the cleanup after it removed."""
    diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    result = align("f", config=settings(auto_cleanup_backups=True))["f"]
    assert not repo.exists("backup-f-pre-align")
    row = "| Backup | `backup-f-pre-align` (removed after the alignment: auto_cleanup_backups) |"
    assert row in Path(str(result.document)).read_text().splitlines()


def test_check_commands_do_not_inherit_a_repository_location(
    repo: Repo, align: Aligner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    seen = tmp_path / "env.txt"
    check = ["python3", "-c", f"import os; open({str(seen)!r}, 'w').write(os.environ.get('GIT_DIR', 'unset'))"]
    assert align("f", config=settings(check_commands=[check]))["f"].status is Status.COMPLETED
    assert seen.read_text() == "unset"


@pytest.mark.parametrize(
    "variable", ["GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"]
)
def test_a_hooks_object_directory_in_the_environment_is_not_where_merges_go(
    repo: Repo, align: Aligner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """git sets these inside a hook (a user's shell may hold them): with GIT_OBJECT_DIRECTORY the merge commit
    was written there while the branch moved here, to a commit this repository lacks."""
    diverge(repo, "f", {"a.txt": "a\n"}, {"b.txt": "b\n"})
    elsewhere = tmp_path / "elsewhere-objects"
    elsewhere.mkdir()
    monkeypatch.setenv(variable, str(elsewhere))
    assert align("f")["f"].status is Status.COMPLETED
    monkeypatch.delenv(variable)
    repo.git("fsck", "--strict", "--no-dangling")
    assert repo.git("cat-file", "-t", repo.tip("f")) == "commit"
    assert not any(elsewhere.iterdir())


def _merge_tree_runs(trace: Path) -> list[list[str]]:
    """The argv of every ``git merge-tree`` process a GIT_TRACE2_EVENT file recorded."""
    events = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines()] if trace.exists() else []
    return [event["argv"] for event in events if event.get("event") == "start" and "merge-tree" in event["argv"]]


def test_diverged_branches_are_merged_in_one_batch_each_with_its_own_result(
    repo: Repo, align: Aligner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = repo.tip("main")
    tips = {name: repo.commit(name, {f"{name}.py": f"{name.upper()} = 1\n"}, parent=base) for name in ("a", "b")}
    tips["c"] = repo.commit("c", {"README.md": "# Project\n\nTheirs.\n"}, parent=base)
    repo.commit("main", {"README.md": "# Project\n\nOurs.\n"}, "main work")
    trace = tmp_path / "trace2.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    results = align("a", "b", "c")
    monkeypatch.delenv("GIT_TRACE2_EVENT")
    runs = _merge_tree_runs(trace)
    assert [argv for argv in runs if "--write-tree" in argv] == []  # no branch started a merge of its own
    assert ["--stdin" in argv for argv in runs][:1] == [True]
    for name in ("a", "b"):
        expected = repo.git("merge-tree", "--write-tree", tips[name], repo.tip("main"))
        assert results[name].status is Status.COMPLETED
        assert repo.git("rev-parse", f"{results[name].new_tip}^{{tree}}") == expected
    assert (results["c"].status, results["c"].codes) == (Status.FAILED_INTEGRATION, ("merge_conflict_unresolvable",))
    assert results["c"].message == "Merge conflict in README.md (unresolvable)"
    assert repo.tip("c") == tips["c"]


def test_a_batch_git_refuses_leaves_each_branch_to_merge_on_its_own(repo: Repo, align: Aligner) -> None:
    """git ends a ``merge-tree --stdin`` batch at unrelated histories: the other branches still merge."""
    old = diverge(repo, "a", {"a.txt": "a\n"}, {"m.txt": "m\n"})
    repo.commit("orphan", {"other.txt": "x\n"}, parents=())
    results = align("orphan", "a")
    assert (results["orphan"].status, results["orphan"].codes) == (Status.FAILED_INTEGRATION, ("unrelated_histories",))
    assert results["a"].status is Status.COMPLETED
    assert repo.git("rev-parse", "a^1") == old


def test_a_process_merges_ahead_only_the_branches_it_will_align_in_their_order(repo: Repo, tmp_path: Path) -> None:
    """Under xdist each worker is given its share: it batches those merges, not its whole target's."""
    base = repo.tip("main")
    tips = {name: repo.commit(name, {f"{name}.py": "X = 1\n"}, parent=base) for name in ("a", "b", "c")}
    target = repo.commit("main", {"m.py": "M = 1\n"})
    branches = parse_branches({"branches": [entry(name) for name in ("a", "b", "c")]}, "t")
    setup = set_up_run(Settings(), branches, repo.path, reports_dir=tmp_path / "r")
    try:
        with Runtime(setup, branches=[branches.branches[2], branches.branches[0]]) as runtime:
            assert runtime.merges is not None
            assert runtime.merges._queues == [[(tips["c"], target), (tips["a"], target)]]
        with Runtime(setup) as runtime:
            assert runtime.merges is not None
            assert runtime.merges._queues == [[(tips[name], target) for name in ("a", "b", "c")]]
    finally:
        setup.discard_scratch()
