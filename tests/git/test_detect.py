"""Error detection: file checks, check commands in a worktree, and the rebase strategy's worktrees."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest

from alignment.detect import check_file
from alignment.errors import GitError
from alignment.git import Git, RepoLocation
from alignment.model import Action, Severity, Status
from alignment.processes import run_process
from alignment.workspace import Workspace
from tests.conftest import Aligner, Repo, alive, settings, with_merge_of_its_own

FILE_PROBLEMS = [
    ("a.py", "def f(:\n", "python_syntax_error", 1),
    ("a.pyi", "x: = 1\n", "python_syntax_error", 1),
    ("a.json", '{"a": 1,}', "json_parse_error", 1),
    ("a.yml", "a: [\n", "yaml_parse_error", 2),
    ("a.yaml", "a: b: c\n", "yaml_parse_error", 1),
    ("a.toml", "a = 1\na = 2\n", "toml_parse_error", None),
    ("analysis.ipynb", '{"cells": [],\n "nbformat": 4,}', "json_parse_error", 2),
    ("map.geojson", '{"type": "Feature",\n}', "json_parse_error", 2),
    ("php/composer.lock", '{"packages": [\n  {"name": "a"}\n  {"name": "b"}\n]}', "json_parse_error", 3),
    ("Pipfile.lock", "{\n  // no comments in JSON\n}", "json_parse_error", 2),
    ("tsconfig.json", '{\n  /* a comment\n     of lines */\n  "a": 1\n  "b": 2\n}', "json_parse_error", 5),
    ("a.json", '{\n  "a": 1,\n  "b": 2,\n  "a": 3\n}', "duplicate_dict_key", 4),
    ("a.json", '{"verbose": 1,\n "x": 0,\n "verbose": true}', "duplicate_dict_key", 3),
    ("a.json", '{"on": false,\n "on": 0}', "duplicate_dict_key", 2),
    ("a.json", '{"n": [1, {"a": 1}],\n "n": [1, {"a": 1.0}]}', "duplicate_dict_key", 2),
    ("a.yaml", "server:\n  timeout: 30\n  host: a\n  'timeout': 30\n", "duplicate_dict_key", 4),
    ("a.yml", ".a: &d {x: 1}\nj: *d\n.b: &d\n  x: 2\n  x: 3\nk: *d\n", "duplicate_dict_key", 5),
    ("a.yml", ".a: &d {x: 1}\nj: *e\n", "yaml_parse_error", 2),
    ("notes.md", "x\n<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n", "conflict_markers", 2),
    ("notes.md", "ok  \nfine\nbad\t\n", "trailing_whitespace", 1),
]


@pytest.mark.parametrize(("path", "content", "code", "line"), FILE_PROBLEMS)
def test_file_checks_find_the_problem_and_its_line(path: str, content: str, code: str, line: int | None) -> None:
    findings = [finding for finding in check_file(path, content.encode()) if finding.code == code]
    assert len(findings) == 1
    assert findings[0].file == path
    if line is not None:
        assert findings[0].line == line


def test_clean_files_and_lookalikes_have_no_findings() -> None:
    assert check_file("a.py", b"def f():\n    return 1\n") == []
    assert check_file("a.json", b'{"a": [1, 2]}') == []
    assert check_file("a.yaml", b"a: 1\n---\nb: 2\n") == []
    assert check_file("a.toml", b"[x]\na = 1\n") == []
    assert check_file("title.rst", b"Title\n=======\n") == []
    assert check_file("half.md", b"<<<<<<< only an opening\n") == []


VALID_DIALECTS = [
    (
        "template.yaml",
        "Resources:\n  B:\n    Name: !Ref Bucket\n    Arn: !GetAtt [Queue, Arn]\n    S: !Sub\n      - x\n",
    ),
    (
        "mkdocs.yml",
        "markdown_extensions:\n  - pymdownx.emoji:\n      emoji_index: !!python/name:material.emoji.twemoji\n",
    ),
    (".gitlab-ci.yml", "test:\n  script:\n    - !reference [.setup, script]\n"),
    ("base.yaml", "base: &base {timeout: 1, host: a}\nprod:\n  <<: *base\n  timeout: 2\n"),
    (".gitlab-ci.yml", ".d: &defaults\n  image: a\nunit:\n  <<: *defaults\n.e: &defaults {image: b}\ne2e: *defaults\n"),
    ("tsconfig.json", '{\n  // TypeScript settings\n  "include": ["src", /* and */ "test",],\n}\n'),
    ("web/tsconfig.app.json", '{"url": "http://x//y", "glob": "/*", /* c */ "a": [1,]}'),
    ("x/.vscode/settings.json", '{\n  "editor.tabSize": 2, // two\n}'),
    ("appsettings.Development.json", '{\n  /* local */\n  "Logging": {"Level": "Debug",},\n}'),
    ("settings.jsonc", '{"a": 1, // one\n}'),
    ("app.code-workspace", '{"folders": [{"path": "."},],}'),
    (".babelrc", '{\n  // presets\n  "presets": ["@babel/env",],\n}'),
    ("same.json", '{"a": 1, "b": 2, "a": 1}'),
    ("same-object.json", '{"a": {"x": 1, "y": NaN}, "a": {"y": NaN,"x": 1}}'),
]


@pytest.mark.parametrize(("path", "content"), VALID_DIALECTS)
def test_valid_files_of_their_tools_dialects_parse(path: str, content: str) -> None:
    """YAML with custom tags or an anchor defined again (YAML allows it) and JSON with comments and trailing commas
    (JSONC) where the file's tool reads them: such files were refused in every version, so an error a merge added
    to one was taken for one it had before the merge (`(before the merge too)`) and the branch moved. A JSON key
    repeated with its value loses nothing."""
    assert check_file(path, content.encode()) == []


def test_trailing_whitespace_is_only_a_warning() -> None:
    (finding,) = check_file("a.txt", b"a \nb \n")
    assert (finding.severity, finding.blocks, finding.message) == (
        Severity.WARNING,
        False,
        "trailing whitespace on 2 lines",
    )


def test_binary_and_huge_files_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_file("a.py", b"\x00\x01def f(:") == []
    monkeypatch.setattr("alignment.detect.MAX_CHECKED_BYTES", 4)
    assert check_file("a.py", b"def f(:\n") == []


TOO_DEEP = [  # past Python's recursion limit in the parser (or pyflakes): RecursionError escaped the detector
    ("fixture.json", '{"data": ' + "[" * 1500 + "]" * 1500 + "}", "json_parse_error", "JSON"),
    ("tsconfig.json", '{"data": ' + "[" * 1500 + "]" * 1500 + ",}", "json_parse_error", "JSON"),
    ("deep.json", '{"a": ' + "[" * 900 + "]" * 900 + ', "a": 1}', "duplicate_dict_key", None),
    (
        "deep.yaml",
        "".join("  " * level + f"k{level}:\n" for level in range(330)) + "  " * 330 + "1\n",
        "yaml_parse_error",
        "YAML",
    ),
    ("deep.toml", "a = " + "[" * 3000 + "]" * 3000 + "\n", "toml_parse_error", "TOML"),
    ("gen.py", "x = 1" + " + 1" * 3000 + "\n", "python_syntax_error", "Python"),
    ("gen.py", "x = " + "-" * 10000 + "1\n", "python_syntax_error", "Python"),
    ("gen.py", "x = " + "-" * 1000 + "1\n", "python_compile_error", None),
    ("gen.py", "x = " + "-" * 500 + "1\n", None, None),
]


@pytest.mark.parametrize(("path", "content", "code", "language"), TOO_DEEP, ids=[case[0] for case in TOO_DEEP])
def test_a_file_nested_too_deeply_to_parse_is_a_parse_finding(
    path: str, content: str, code: str | None, language: str | None
) -> None:
    findings = [(finding.code, finding.message) for finding in check_file(path, content.encode())]
    if language is not None:
        assert findings == [(code, f"{language} nested too deeply to parse")]
    else:
        assert [found for found, _ in findings] == ([code] if code else [])


def test_a_file_nested_too_deeply_before_the_merge_too_is_a_warning(repo: Repo, align: Aligner) -> None:
    """Both sides edit a JSON fixture 1,500 arrays deep: the branch was ``exception``, its merge unchecked."""
    fixture = '{"name": "fixture",\n "data": ' + "[" * 1500 + "]" * 1500 + ',\n "end": 1}\n'
    fork = repo.commit("main", {"deep.json": fixture}, "base")
    repo.commit("feature", {"deep.json": fixture.replace('"fixture"', '"fixture-b"')}, parent=fork)
    repo.commit("main", {"deep.json": fixture.replace('"end": 1', '"end": 2')}, "target work")
    result = align("feature")["feature"]
    assert result.status is Status.COMPLETED
    (finding,) = result.findings
    assert (finding.code, finding.severity, finding.file) == ("json_parse_error", Severity.WARNING, "deep.json")
    assert finding.message == "JSON nested too deeply to parse (before the merge too)"


BOM = "\ufeff"


@pytest.mark.parametrize(
    ("path", "content"),
    [
        *((path, content) for path, content, _, _ in FILE_PROBLEMS),
        ("a.py", "def f():\n    return 1\n"),
        ("a.py", "f(\n    a=1,\n    a=2,\n)\n"),
        ("a.py", "x = 1\n\n\nprint(y)\n"),
        ("a.json", '{"a": [1, 2]}'),
        ("a.toml", "[x]\na = 1\n"),
        ("a.toml", "a = [\n"),
        ("a.go", "package main\n\nfunc f() {}\n\nfunc f() {}\n"),
        ("notes.md", "<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n"),
    ],
)
def test_a_byte_order_mark_is_the_files_encoding_not_its_content(path: str, content: str) -> None:
    """Python, JSON (RFC 8259 lets parsers ignore it), YAML, TOML and the other languages' compilers all accept
    a UTF-8 file that starts with a BOM: such a file has the findings it has without one, on the same lines.
    Python and JSON found "invalid non-printable character U+FEFF" / "Unexpected UTF-8 BOM" in every version,
    TOML "Invalid statement", so an error the merge made was taken for one the file had before."""
    assert check_file(path, (BOM + content).encode()) == check_file(path, content.encode())


def test_an_error_the_merge_makes_in_a_file_with_a_byte_order_mark_fails_detection(repo: Repo, align: Aligner) -> None:
    call = BOM + "g(\n    a=1,\n    b=2,\n    c=3,\n    d=4,\n    e=5,\n)\n"
    fork = repo.commit("main", {"bom.py": call}, "base")
    old = repo.commit("feature", {"bom.py": call.replace("e=5", "x=5")}, parent=fork)
    repo.commit("main", {"bom.py": call.replace("a=1", "x=1")}, "target work")
    result = align("feature")["feature"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("python_compile_error",))
    (finding,) = result.findings
    assert (finding.file, finding.line) == ("bom.py", 6)
    assert finding.message == "Python does not compile: keyword argument repeated: x"
    assert repo.tip("feature") == old


def test_the_names_check_reads_modules_with_a_byte_order_mark(repo: Repo, align: Aligner) -> None:
    """Neither the module nor the file importing from it parsed with its BOM, so the name was "unknown"."""
    util = BOM + "def helper():\n    return 1\n"
    fork = repo.commit("main", {"pkg/__init__.py": "", "pkg/util.py": util}, "base")
    repo.commit("feature", {"app.py": BOM + "from pkg.util import helper\n\nprint(helper())\n"}, parent=fork)
    repo.commit("main", {"pkg/util.py": util.replace("def helper", "def assist")}, "Rename helper to assist")
    (finding,) = align("feature")["feature"].findings
    assert (finding.code, finding.file, finding.line) == ("name_removed_by_other_side", "app.py", 1)


BROKEN_BY_A_CLEAN_MERGE = [  # base, target's change, branch's change (git merges them cleanly): the merge breaks
    (
        "template.yaml",
        "R:\n  B:\n    N: !Ref Name\n  P:\n    Type: Q\n\n  O: 1\n",
        ("  P:\n    Type: Q\n", "  P: !GetAtt Q.Arn\n"),
        ("\n\n  O: 1", "\n\n    Extra: 1\n  O: 1"),
        ("yaml_parse_error", 6, "invalid YAML: mapping values are not allowed here"),
    ),
    (
        "tsconfig.json",
        '{\n  // settings\n  "include": [\n    "a",\n\n\n    "b"\n  ]\n}\n',
        ('"include": [\n    "a",\n\n\n    "b"\n  ]', '"include": {\n    "a": 1,\n\n\n    "b": 2\n  }'),
        ("\n\n\n", '\n\n    "c",\n\n'),
        ("json_parse_error", 6, "invalid JSON: Expecting ':' delimiter"),
    ),
    (
        "config.yaml",
        "server:\n  host: a\n  port: 1\n  name: x\n  user: u\n",
        ("  host", "  timeout: 30\n  host"),
        ("  user", "  timeout: 300\n  user"),
        ("duplicate_dict_key", 6, "mapping key 'timeout' repeated (YAML keys are unique)"),
    ),
    (
        "settings.json",
        '{\n  "host": "a",\n  "port": 1,\n  "name": "x",\n  "user": "u"\n}\n',
        ('  "host"', '  "timeout": 30,\n  "host"'),
        ('  "user"', '  "timeout": 300,\n  "user"'),
        ("duplicate_dict_key", 6, "object key 'timeout' repeated with different values"),
    ),
]


@pytest.mark.parametrize(
    ("path", "base", "ours", "theirs", "expected"),
    BROKEN_BY_A_CLEAN_MERGE,
    ids=[case[0] for case in BROKEN_BY_A_CLEAN_MERGE],
)
def test_a_data_file_a_clean_merge_breaks_fails_detection(
    repo: Repo,
    align: Aligner,
    path: str,
    base: str,
    ours: tuple[str, str],
    theirs: tuple[str, str],
    expected: tuple[str, int, str],
) -> None:
    """A YAML file with CloudFormation tags, a tsconfig.json with a comment: both sides' versions are valid
    for their tools, the merge's is not. Both sides add a key to one mapping: the merged file has it twice."""
    fork = repo.commit("main", {path: base}, "base")
    old = repo.commit("feature", {path: base.replace(*theirs)}, parent=fork)
    repo.commit("main", {path: base.replace(*ours)}, "target work")
    result = align("feature")["feature"]
    assert result.status is Status.FAILED_ERROR_DETECTION
    assert [(f.code, f.line, f.message, f.introduced) for f in result.findings] == [(*expected, True)]
    assert repo.tip("feature") == old


def test_a_repeated_key_a_side_had_already_does_not_fail_detection(repo: Repo, align: Aligner) -> None:
    base = "a: 1\nb: 2\na: 3\nc: 4\n"
    fork = repo.commit("main", {"c.yaml": base}, "base")
    repo.commit("feature", {"c.yaml": base.replace("b: 2", "b: 20")}, parent=fork)
    repo.commit("main", {"c.yaml": base.replace("c: 4", "c: 40")}, "target work")
    result = align("feature")["feature"]
    assert result.status is Status.COMPLETED
    (finding,) = result.findings
    assert (finding.code, finding.severity, finding.line) == ("duplicate_dict_key", Severity.WARNING, 3)
    assert finding.message == "mapping key 'a' repeated (YAML keys are unique) (before the merge too)"


def test_a_finding_the_target_had_before_the_branch_renamed_the_file_predates_the_merge(
    repo: Repo, align: Aligner
) -> None:
    """The target's version is where the branch renamed the file from, not at the new path (where the target has
    nothing): gettext's ``_`` (a builtin at run time) was taken for an undefined name the merge added."""
    views = (
        'def index():\n    return "hello"\n\n\ndef about():\n    return "about"\n\n\ndef contact():\n    return "c"\n'
    )
    fork = repo.commit("main", {"app/views.py": views}, "base")
    moved = {"app/views.py": None, "app/web/views.py": views.replace('"c"', '"contact"')}
    repo.commit("feature", moved, parent=fork)
    repo.commit("main", {"app/views.py": views.replace('return "hello"', 'return _("hello")')}, "translate")
    result = align("feature")["feature"]
    assert result.status is Status.COMPLETED
    (finding,) = result.findings
    assert (finding.code, finding.file, finding.line, finding.introduced) == (
        "undefined_name",
        "app/web/views.py",
        2,
        False,
    )


def diverge(repo: Repo) -> str:
    base = repo.tip("main")
    old = repo.commit("feature", {"feature.txt": "f\n"}, parent=base)
    repo.commit("main", {"main.txt": "m\n"})
    return old


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(f"import os, sys, time\n{body}\n", encoding="utf-8")
    return str(path)


def test_a_passing_check_command_completes(
    repo: Repo, align: Aligner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The branch's log says when each check command started and how it ended (a long check is no silent gap)."""
    caplog.set_level(logging.INFO, logger="alignment")
    diverge(repo)
    seen = tmp_path / "seen.txt"
    check = script(tmp_path, "check.py", f"open({str(seen)!r}, 'w').write(' '.join(sorted(os.listdir('.'))))")
    result = align("feature", config=settings(check_commands=[[sys.executable, check]]))["feature"]
    assert result.status is Status.COMPLETED
    assert "feature.txt" in seen.read_text()
    assert "main.txt" in seen.read_text()
    assert len(repo.git("worktree", "list").splitlines()) == 1
    said = [message for message in caplog.messages if check in message]
    assert said[0] == f"running `{sys.executable} {check}` at {result.new_tip}"
    assert re.fullmatch(rf"`{re.escape(sys.executable)} {re.escape(check)}` exited 0 after [0-9.]+ s", said[1])


def test_a_worktree_git_cannot_check_out_names_the_real_cause(
    repo: Repo, align: Aligner, caplog: pytest.LogCaptureFixture
) -> None:
    """A required filter whose program is missing (git-lfs not installed) failed the branch with "the remote
    end hung up unexpectedly" in about half the runs: git's last line, the cause in neither result nor log."""
    caplog.set_level(logging.INFO, logger="alignment")
    repo.commit("main", {".gitattributes": "*.bin filter=lfs -text\n", "big.bin": "a pointer\n"}, "lfs")
    repo.git("config", "filter.lfs.process", "no-such-filter-program filter-process")
    repo.git("config", "filter.lfs.required", "true")
    old = diverge(repo)
    result = align("feature", config=settings(check_commands=[["true"]]))["feature"]
    assert result.status is Status.EXCEPTION
    assert "git worktree add failed: " in str(result.message)
    assert "no-such-filter-program" in str(result.message)
    (logged,) = [message for message in caplog.messages if "git said:" in message]
    assert "no-such-filter-program" in logged
    assert repo.tip("feature") == old


def test_a_check_command_the_merge_breaks_fails_detection(
    repo: Repo, align: Aligner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alignment")
    old = diverge(repo)
    check = script(
        tmp_path,
        "check.py",
        "print('checking'); print('both files present', file=sys.stderr)\n"
        "sys.exit(3 if os.path.exists('feature.txt') and os.path.exists('main.txt') else 0)",
    )
    result = align("feature", config=settings(check_commands=[[sys.executable, check]]))["feature"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("check_command_failed",))
    assert "exited 3: both files present" in str(result.message)
    said = f"finding error check_command_failed: `{sys.executable} {check}` exited 3: both files present"
    assert said in caplog.messages  # a finding of no file is said without a place (it was "None:None")
    ended = f"`{sys.executable} {check}` exited 3 after "
    assert any(message.startswith(ended) and "its output:" in message for message in caplog.messages)
    assert repo.tip("feature") == old
    assert len(repo.git("worktree", "list").splitlines()) == 1


def test_a_check_that_failed_before_the_merge_is_a_warning(repo: Repo, align: Aligner, tmp_path: Path) -> None:
    diverge(repo)
    check = script(tmp_path, "check.py", "sys.exit(1)")
    result = align("feature", config=settings(check_commands=[[sys.executable, check]]))["feature"]
    assert result.status is Status.COMPLETED
    (finding,) = result.findings
    assert (finding.code, finding.severity, finding.introduced) == ("check_command_failed", Severity.WARNING, False)


def sequence(tmp_path: Path, log: Path, steps: dict[str, str]) -> list[list[str]]:
    """Check commands named as ``steps``' keys, each logging ``name cwd`` to ``log`` before its body runs."""
    record = f"open({str(log)!r}, 'a').write(f'{{sys.argv[1]}} {{os.getcwd()}}\\n')"
    return [[sys.executable, script(tmp_path, f"{name}.py", f"{record}\n{body}"), name] for name, body in steps.items()]


def runs_by_worktree(log: Path) -> dict[str, list[str]]:
    """The commands ``sequence`` logged, in order, by the worktree they ran in."""
    runs: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        name, cwd = line.split(" ", 1)
        runs.setdefault(cwd, []).append(name)
    return runs


def test_a_check_the_merge_breaks_after_an_earlier_check_fails_detection(
    repo: Repo, align: Aligner, tmp_path: Path
) -> None:
    """A build, then the test that needs it (``npm ci``, ``npm test``): the test fails on the merge, and on
    the old tip and the target it passes once built. The comparison ran the test alone in a worktree of
    each, where it failed for want of the build: "(before the merge too)", and the broken merge moved."""
    old = diverge(repo)
    log = tmp_path / "runs.txt"
    checks = sequence(
        tmp_path,
        log,
        {
            "build": "os.makedirs('build', exist_ok=True); open('build/out', 'w').write(' '.join(os.listdir('.')))",
            "test": "sys.exit(2 if {'feature.txt', 'main.txt'} <= set(open('build/out').read().split()) else 0)",
        },
    )
    result = align("feature", config=settings(check_commands=checks))["feature"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("check_command_failed",))
    assert "exited 2" in str(result.message)
    assert repo.tip("feature") == old
    assert list(runs_by_worktree(log).values()) == [["build", "test"]] * 3  # the merge, the old tip, the target


def test_a_check_that_fails_after_an_earlier_check_before_the_merge_too_is_a_warning(
    repo: Repo, align: Aligner, tmp_path: Path
) -> None:
    """``python -m compileall -q .`` (leaves ``__pycache__``), then a "the tree is clean" check: in this
    order it fails on the old tip as on the merge. Run alone on the old tip and the target it passed, and the
    merge was blamed for it."""
    diverge(repo)
    log = tmp_path / "runs.txt"
    checks = sequence(
        tmp_path,
        log,
        {
            "compile": "open('leftover.pyc', 'w').close()",
            "clean": "sys.exit(1 if os.path.exists('leftover.pyc') else 0)",
        },
    )
    result = align("feature", config=settings(check_commands=checks))["feature"]
    assert result.status is Status.COMPLETED
    (finding,) = result.findings
    assert (finding.code, finding.severity, finding.introduced) == ("check_command_failed", Severity.WARNING, False)
    assert list(runs_by_worktree(log).values()) == [["compile", "clean"]] * 2  # the merge, the old tip


def test_the_state_before_the_merge_replays_each_commands_predecessors_once(
    repo: Repo, align: Aligner, tmp_path: Path
) -> None:
    """Two failing checks after a build: the old tip's worktree runs the build once, then each check in turn,
    failing or not, as the merge's did (a command that fails does not stop the ones after it); passing
    commands on the merge are not compared, and a branch whose checks pass runs them in one worktree."""
    diverge(repo)
    log = tmp_path / "runs.txt"
    checks = sequence(
        tmp_path,
        log,
        {"build": "pass", "first": "sys.exit(1)", "ok": "pass", "second": "sys.exit(1)", "last": "pass"},
    )
    result = align("feature", config=settings(check_commands=checks))["feature"]
    assert result.status is Status.COMPLETED
    assert [finding.severity for finding in result.findings] == [Severity.WARNING, Severity.WARNING]
    every = ["build", "first", "ok", "second", "last"]
    assert list(runs_by_worktree(log).values()) == [every, every[:4]]
    log.unlink()
    diverge(repo)
    passing = sequence(tmp_path, log, {"build": "pass", "test": "pass"})
    assert align("feature", config=settings(check_commands=passing))["feature"].status is Status.COMPLETED
    assert list(runs_by_worktree(log).values()) == [["build", "test"]]


def test_check_commands_see_neither_the_harness_pytest_nor_another_branchs_temporary_files(
    repo: Repo, align: Aligner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What pytest and xdist set in the harness's own process differed between ``-n 0``, ``-n 2`` and the
    orchestrator, and every branch's checks shared the system's temporary directory. The user's own pytest
    settings are theirs to give a check that runs pytest."""
    for name in ("CURRENT_TEST", "VERSION", "XDIST_WORKER", "XDIST_WORKER_COUNT", "XDIST_TESTRUNUID"):
        monkeypatch.setenv(f"PYTEST_{name}", "harness")  # as they are in an xdist worker, whatever -n says
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:randomly")
    monkeypatch.setenv("PYTEST_PLUGINS", "mine")
    base = repo.tip("main")
    for name in ("one", "two"):
        repo.commit(name, {f"{name}.txt": "x\n"}, parent=base)
    repo.commit("main", {"main.txt": "m\n"})
    seen = tmp_path / "seen.jsonl"
    body = (
        "import json, tempfile\n"
        "tmp = tempfile.gettempdir()\n"
        "record = {'env': sorted(k for k in os.environ if k.startswith('PYTEST')), 'tmp': tmp,"
        " 'beside': os.listdir(os.path.dirname(tmp)), 'cwd': os.getcwd()}\n"
        f"open({str(seen)!r}, 'a').write(json.dumps(record) + '\\n')"
    )
    check = [sys.executable, script(tmp_path, "env.py", body)]
    results = align("one", "two", config=settings(check_commands=[check, check]))
    assert {result.status for result in results.values()} == {Status.COMPLETED}
    records = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [record["env"] for record in records] == [["PYTEST_ADDOPTS", "PYTEST_PLUGINS"]] * 4
    one, again, two, _ = (Path(record["tmp"]) for record in records)
    assert one == again  # the commands of a worktree share its TMPDIR, as they share the worktree
    assert one != two
    for record in records:  # in the run's scratch directory, beside no other branch's (the first one's is gone)
        tmp, worktree = Path(record["tmp"]), Path(record["cwd"])
        assert (tmp.name, record["beside"]) == (worktree.name, [tmp.name])
        assert tmp.parent.parent == worktree.parent.parent
        assert not tmp.exists()


def test_per_target_check_commands(repo: Repo, align: Aligner, tmp_path: Path) -> None:
    diverge(repo)
    check = script(
        tmp_path, "check.py", "sys.exit(5 if os.path.exists('main.txt') and os.path.exists('feature.txt') else 0)"
    )
    config = settings(targets={"main": {"check_commands": [[sys.executable, check]]}})
    assert align("feature", config=config)["feature"].codes == ("check_command_failed",)


def test_a_missing_check_command_is_a_failure_not_a_crash(repo: Repo, align: Aligner) -> None:
    """Named by its path, the program is looked for in the worktree (one not on PATH is a ``ConfigError``)."""
    diverge(repo)
    result = align("feature", config=settings(check_commands=["./no-such-command-xyz --flag"]))["feature"]
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("check_command_not_found",))
    assert "`./no-such-command-xyz --flag` could not start" in str(result.message)


def test_a_list_check_command_is_shown_as_a_shell_would_run_it(repo: Repo, align: Aligner) -> None:
    """Joined with spaces, ``["sh", "-c", "test ! -f x || test ! -f y"]`` read as ``sh -c test ! -f x || ...``:
    pasted into a shell, that runs ``test`` alone, then a second command."""
    diverge(repo)
    check = ["sh", "-c", "test ! -f main.txt || test ! -f feature.txt"]  # fails where both sides' files are
    result = align("feature", config=settings(check_commands=[check]))["feature"]
    assert result.codes == ("check_command_failed",)
    assert "(`sh -c 'test ! -f main.txt || test ! -f feature.txt'` exited 1)" in str(result.message)


@pytest.mark.slow
def test_a_hung_check_is_killed_with_its_whole_process_group(repo: Repo, align: Aligner, tmp_path: Path) -> None:
    old = diverge(repo)
    pids = tmp_path / "pids.txt"
    body = f"""
import signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
    os._exit(0)
open({str(pids) + ".tmp"!r}, 'w').write(f"{{os.getpid()}} {{child}}")
os.replace({str(pids) + ".tmp"!r}, {str(pids)!r})
time.sleep(600)
"""
    hang = script(tmp_path, "hang.py", body)
    started = time.monotonic()
    result = align(  # the supervisor's and the check's interpreters start first: 2-3 s each on a busy machine
        "feature", config=settings(check_commands=[[sys.executable, hang]], error_detection_timeout_seconds=8)
    )["feature"]
    assert time.monotonic() - started < 30
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("check_command_timeout",))
    assert repo.tip("feature") == old
    started_pids = list(map(int, pids.read_text().split()))
    assert len(started_pids) == 2
    for pid in started_pids:
        assert not alive(pid), f"process {pid} survived"
    assert len(repo.git("worktree", "list").splitlines()) == 1


def hanging_with_a_child(tmp_path: Path, pids: Path) -> str:
    """A command that forks a sleeping child, writes both pids to ``pids`` (whole or not at all), and sleeps."""
    body = f"""
child = os.fork()
if child == 0:
    time.sleep(600)
    os._exit(0)
open({str(pids) + ".tmp"!r}, 'w').write(f"{{os.getpid()}} {{child}}")
os.replace({str(pids) + ".tmp"!r}, {str(pids)!r})
time.sleep(600)
"""
    return script(tmp_path, "hang.py", body)


@pytest.mark.slow
def test_the_branch_timeout_bounds_a_check_and_kills_its_children(repo: Repo, align: Aligner, tmp_path: Path) -> None:
    """Without pytest's timeout signal (the orchestrator), what is left of the branch's time bounds a check
    command whose own limit is longer; the command and its child are gone when the branch fails."""
    old = diverge(repo)
    pids = tmp_path / "pids.txt"
    hang = hanging_with_a_child(tmp_path, pids)
    config = settings(
        check_commands=[[sys.executable, hang]], branch_alignment_timeout_seconds=8, error_detection_timeout_seconds=60
    )  # room for the merge and two interpreters to start on a busy machine before the time runs out
    started = time.monotonic()
    result = align("feature", config=config)["feature"]
    assert time.monotonic() - started < 30
    assert (result.status, result.codes) == (Status.FAILED_ERROR_DETECTION, ("check_command_timeout",))
    seconds = float(str(result.message).rsplit(" timed out after ", 1)[1].split()[0])
    assert seconds <= 8
    assert repo.tip("feature") == old
    for pid in map(int, pids.read_text().split()):
        assert not alive(pid), f"process {pid} survived"


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, pytest.fail.Exception], ids=["ctrl-c", "branch-timeout"])
def test_an_interrupted_check_is_killed_with_its_whole_process_group(
    tmp_path: Path, interruption: type[BaseException]
) -> None:
    """Ctrl-C, or the branch's timeout (pytest-timeout's signal raises ``Failed``, a ``BaseException``),
    arriving while a check command runs: the command and its child are gone when the exception leaves."""
    pids = tmp_path / "pids.txt"
    hang = hanging_with_a_child(tmp_path, pids)

    def interrupt(signum: int, frame: object) -> None:
        if pids.exists():  # both processes started: interrupt now, else look again shortly
            raise interruption("interrupted")
        signal.setitimer(signal.ITIMER_REAL, 0.05)

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    try:
        with pytest.raises(interruption):
            run_process([sys.executable, hang], timeout=120)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    for pid in map(int, pids.read_text().split()):
        for _ in range(100):  # SIGKILL was sent; give the kernel a moment to finish the process
            if not alive(pid):
                break
            time.sleep(0.05)
        assert not alive(pid), f"process {pid} survived"


def test_rebase_strategy_replays_the_branch_on_the_target(repo: Repo, align: Aligner) -> None:
    old = diverge(repo)
    target = repo.tip("main")
    result = align("feature", config=settings(integration_strategy="rebase"))["feature"]
    assert (result.status, result.action) == (Status.COMPLETED, Action.REBASE)
    new = repo.tip("feature")
    assert repo.git("rev-parse", f"{new}^") == target
    assert repo.git("rev-list", "--count", f"{target}..{new}") == "1"
    assert repo.tip("backup-feature-pre-align") == old
    assert len(repo.git("worktree", "list").splitlines()) == 1


def test_rebase_conflict_is_aborted_and_cleaned_up(repo: Repo, align: Aligner) -> None:
    base = repo.tip("main")
    old = repo.commit("feature", {"app.py": "mine\n"}, parent=base)
    repo.commit("main", {"app.py": "theirs\n"})
    config = settings(targets={"main": {"integration_strategy": "rebase"}})
    result = align("feature", config=config)["feature"]
    assert (result.status, result.codes, result.action) == (
        Status.FAILED_INTEGRATION,
        ("merge_conflict_unresolvable",),
        Action.REBASE,
    )
    assert result.message == "Rebase conflict in app.py (unresolvable)"
    assert repo.tip("feature") == old
    assert len(repo.git("worktree", "list").splitlines()) == 1
    assert not list((repo.path / repo.git("rev-parse", "--git-common-dir")).glob("worktrees/*"))


def test_a_branch_with_merge_commits_of_its_own_is_not_rebased(repo: Repo, align: Aligner) -> None:
    """``git rebase`` would replay only the merged commits: ``fix.txt``, made in the merge, would be gone."""
    old = with_merge_of_its_own(repo, "feature")
    repo.commit("main", {"main.txt": "m\n"})
    result = align("feature", config=settings(integration_strategy="rebase"))["feature"]
    assert (result.status, result.codes) == (Status.FAILED_INTEGRATION, ("integration_failed",))
    assert f"'feature' has merge commits of its own ({old[:10]}); a rebase would drop" in str(result.message)
    assert repo.tip("feature") == old
    assert len(repo.git("worktree", "list").splitlines()) == 1
    merged = align("feature", config=settings())["feature"]  # the merge strategy keeps what the merge made
    assert merged.status is Status.COMPLETED
    assert repo.read("feature", "fix.txt") == "made in the merge"


def test_rebase_then_checks_reuse_the_same_worktree(repo: Repo, align: Aligner, tmp_path: Path) -> None:
    diverge(repo)
    log = tmp_path / "cwd.txt"
    check = script(tmp_path, "check.py", f"open({str(log)!r}, 'a').write(os.getcwd() + '\\n')")
    config = settings(integration_strategy="rebase", check_commands=[[sys.executable, check]])
    assert align("feature", config=config)["feature"].status is Status.COMPLETED
    assert len(set(log.read_text().split())) == 1
    assert os.path.basename(log.read_text().split()[0]).startswith("wt-")


def test_worktrees_are_removed_even_when_git_add_was_interrupted(repo: Repo, tmp_path: Path) -> None:
    git = Git(RepoLocation.discover(repo.path))
    (tmp_path / "scratch").mkdir()
    workspace = Workspace(git, tmp_path / "scratch", "x")
    first = workspace.checkout(repo.tip("main"))
    with pytest.raises(Exception, match="timed out"):
        workspace.checkout(repo.commit("other", {"o.txt": "o\n"}), timeout=0.000001)
    workspace.close()
    git.close()
    assert not first.exists()
    assert len(repo.git("worktree", "list").splitlines()) == 1
    assert not list((repo.path / repo.git("rev-parse", "--git-common-dir")).glob("worktrees/*"))


def test_a_workspace_never_recreates_the_run_s_scratch_directory(repo: Repo, tmp_path: Path) -> None:
    """The run's owner removed the scratch directory (the run ended): a command's temporary directory is not
    made there again, so nothing of the run reappears in the machine's temporary directory."""
    git = Git(RepoLocation.discover(repo.path))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    workspace = Workspace(git, scratch, "x")
    tree = workspace.checkout(repo.tip("main"))
    assert workspace.temp_dir(tree) == scratch / "tmp" / tree.name
    shutil.rmtree(scratch)
    with pytest.raises(FileNotFoundError):
        workspace.temp_dir(tree)
    assert not scratch.exists()
    git.close()


def test_an_entry_an_interrupted_add_left_without_its_gitdir_is_removed(repo: Repo, tmp_path: Path) -> None:
    """``git worktree add`` killed right after it made the worktree's entry, before the entry's ``gitdir``:
    the entry names no worktree, only its name says whose it is. Another worktree's entry stays."""
    git = Git(RepoLocation.discover(repo.path))
    (tmp_path / "scratch").mkdir()
    workspace = Workspace(git, tmp_path / "scratch", "x")
    kept = workspace.checkout(repo.tip("main"))
    entries = repo.path / repo.git("rev-parse", "--git-common-dir") / "worktrees"
    interrupted = tmp_path / "scratch" / "worktrees" / "wt-interrupted-x"
    (entries / interrupted.name).mkdir()
    (entries / interrupted.name / "HEAD").write_text("0" * 40 + "\n")
    git.remove_worktree(interrupted)
    assert sorted(path.name for path in entries.iterdir()) == [kept.name]
    workspace.close()
    git.close()


def test_a_worktree_removal_that_fails_is_reported_and_the_files_still_go(repo: Repo, tmp_path: Path) -> None:
    git = Git(RepoLocation.discover(repo.path), timeout=0.000001)  # every call without its own timeout fails
    (tmp_path / "scratch").mkdir()
    workspace = Workspace(git, tmp_path / "scratch", "x")
    tree = workspace.checkout(repo.tip("main"), timeout=30)
    with pytest.raises(GitError, match="timed out"):
        workspace.close()
    git.close()
    assert not tree.exists()
    assert len(repo.git("worktree", "list").splitlines()) == 1
