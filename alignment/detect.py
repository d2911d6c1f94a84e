"""Error detection: what the integrated commit breaks, found before the branch moves.

File checks read the files the merge combined from git objects (no checkout): committed conflict markers,
Python that no longer parses or compiles and pyflakes' signs of collided edits (``checks.python``), syntax
and twice-defined names in other languages (``checks.syntax``), JSON / YAML / TOML that no longer parses
or has a key twice in a mapping, and trailing whitespace (a warning). Across files, imports and module
attributes that one side uses and the other removed (``checks.interface``). Check commands from the
configuration run in a worktree of the integrated commit under ``error_detection_timeout_seconds``.

The files checked are the merge's own: those whose merged content neither the branch tip nor the target
had (``BranchContext.merged_files``). Every other file is exactly as on one side, so whatever is wrong in
it was wrong before the merge and is that side's problem, not the alignment's. A finding in a merged file
that the same file had on either side already is reported as a warning with ``introduced: false``.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import json
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from alignment.checks import NAMED_CODES, file_text
from alignment.checks.interface import ModuleIndex, removed_names
from alignment.checks.python import python_findings
from alignment.checks.syntax import GRAMMARS, syntax_findings
from alignment.components import BranchContext, Integration
from alignment.config import Command, Settings
from alignment.errors import counted, first_and_more, seconds
from alignment.git import Git, without_repository_variables
from alignment.model import FileChange, Finding, Severity, Status
from alignment.processes import ProcessTimeout, run_check

log = logging.getLogger(__name__)
MAX_CHECKED_BYTES = 8 * 1024 * 1024
CHECK_OUTPUT_BYTES = 64 * 1024  # of each stream of a check command, the last ones: for the report and the log
_BINARY_PROBE = 8000
# What pytest and xdist set in the harness's own process: a check gets the same environment under ``-n 0``,
# ``-n N`` and the orchestrator. The user's PYTEST_ADDOPTS, PYTEST_PLUGINS, ... pass: they may be meant for
# a check that runs pytest (README says how to keep them from one).
_HARNESS_VARIABLES = frozenset(
    {
        "PYTEST_CURRENT_TEST",
        "PYTEST_VERSION",
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "PYTEST_XDIST_TESTRUNUID",
    }
)

FileCheck = Callable[[str, str], Iterable[Finding]]


def conflict_markers(path: str, text: str) -> Iterable[Finding]:
    """A ``<<<<<<<`` ... ``>>>>>>>`` block committed into the file."""
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        opens_block = line.startswith("<<<<<<< ") or line == "<<<<<<<"
        if opens_block and any(later.startswith(">>>>>>>") for later in lines[number:]):
            yield Finding("conflict_markers", Severity.ERROR, "conflict markers committed", path, number)
            return


def json_syntax(path: str, text: str) -> Iterable[Finding]:
    """JSON that no longer parses, or an object given a key twice with different values (RFC 8259 lets
    parsers keep either value, and Python's keeps the last: one side's value is silently lost)."""
    repeated: dict[int, set[str]] = {}  # an object's number, in the order objects close -> keys repeated
    closed = itertools.count()

    def pairs_hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        number, value = next(closed), dict(pairs)
        if len(value) < len(pairs) and (keys := _keys_with_two_values(pairs)):
            repeated[number] = keys
        return value

    try:
        json.loads(text, object_pairs_hook=pairs_hook)
    except json.JSONDecodeError as exc:
        yield Finding("json_parse_error", Severity.ERROR, f"invalid JSON: {exc.msg}", path, exc.lineno)
        return
    except RecursionError:
        yield _too_deep("json_parse_error", "JSON", path)
        return
    for key, line in _repeated_key_lines(text, repeated):
        message = f"object key {key!r} repeated with different values"
        yield Finding("duplicate_dict_key", Severity.ERROR, message, path, line)


def jsonc_syntax(path: str, text: str) -> Iterable[Finding]:
    """JSON with comments and trailing commas (JSONC: tsconfig.json, VS Code's settings), as JSON once they
    are blanked out."""
    return json_syntax(path, _JSONC_TRAILING_COMMA.sub(_blank, _JSONC_COMMENT.sub(_blank, text)))


_JSON_STRING = r'"(?:[^"\\\n]|\\.)*"'
_JSONC_COMMENT = re.compile(rf"({_JSON_STRING})|//[^\n]*|/\*.*?\*/", re.DOTALL)
_JSONC_TRAILING_COMMA = re.compile(rf"({_JSON_STRING})|,(?=\s*[}}\]])")
_JSON_TOKEN = re.compile(rf"{_JSON_STRING}|[{{}}\[\]:]")


def _blank(match: re.Match[str]) -> str:
    """A comment or a trailing comma as spaces (line breaks kept, so every line keeps its number); a string
    (group 1) as it is."""
    return match.group(1) or re.sub(r"[^\n]", " ", match.group())


def _keys_with_two_values(pairs: list[tuple[str, object]]) -> set[str]:
    """The keys given different values, compared as canonical JSON: ``1``, ``1.0`` and ``true`` differ (Python's
    ``==`` holds them equal, yet the one kept changes what the file's reader gets)."""
    values: dict[str, set[str]] = {}
    for key, value in pairs:
        values.setdefault(key, set()).add(json.dumps(value, sort_keys=True))
    return {key for key, found in values.items() if len(found) > 1}


def _repeated_key_lines(text: str, repeated: dict[int, set[str]]) -> Iterator[tuple[str, int]]:
    """Each of ``repeated``'s keys with the line of its second occurrence, in valid JSON ``text``; objects are
    numbered as they close, as the parser's hook sees them. Read only for a file that has such a key."""
    if not repeated:
        return
    opened: list[dict[str, list[int]] | None] = []  # open objects: key -> its offsets; None for an array
    closed = 0
    key = None
    for token in _JSON_TOKEN.finditer(text):
        kind = token.group()
        if kind in ("{", "["):
            opened.append({} if kind == "{" else None)
        elif kind in ("}", "]"):
            keys = opened.pop()
            if keys is not None:
                for name in sorted(repeated.get(closed, ()), key=lambda name, keys=keys: keys[name][1]):
                    yield name, text.count("\n", 0, keys[name][1]) + 1
                closed += 1
        elif kind == ":":
            keys = opened[-1]
            if keys is not None and key is not None:
                keys.setdefault(json.loads(key.group()), []).append(key.start())
        else:
            key = token


def yaml_syntax(path: str, text: str) -> Iterable[Finding]:
    """YAML that no longer composes, or a mapping given a key twice (the YAML spec makes keys unique: strict
    loaders refuse the file, PyYAML keeps the last value). Composed, not constructed: any tag is accepted
    (CloudFormation's ``!Ref``, mkdocs' ``!!python/name:``, GitLab's ``!reference``) and nothing is built."""
    import yaml  # noqa: PLC0415 - parsers load on first use: most runs check no YAML or TOML file

    composer = _yaml_composer()(text)
    try:
        while composer.check_node():
            composer.get_node()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        yield Finding("yaml_parse_error", Severity.ERROR, f"invalid YAML: {exc.problem}", path, line)
        return
    except yaml.YAMLError as exc:
        yield Finding("yaml_parse_error", Severity.ERROR, f"invalid YAML: {exc}", path, None)
        return
    except RecursionError:
        yield _too_deep("yaml_parse_error", "YAML", path)
        return
    finally:
        composer.dispose()
    for key, line in composer.repeated:
        message = f"mapping key {key!r} repeated (YAML keys are unique)"
        yield Finding("duplicate_dict_key", Severity.ERROR, message, path, line)


class _Composer(Protocol):
    repeated: list[tuple[str, int]]

    def check_node(self) -> bool: ...
    def get_node(self) -> object: ...
    def dispose(self) -> None: ...


@functools.cache
def _yaml_composer() -> Callable[[str], _Composer]:
    """PyYAML's reader, scanner, parser, composer and resolver (``SafeLoader`` without its constructor), noting
    each scalar key a mapping has twice: its value and the line of its second occurrence. An anchor may be
    defined again, as YAML allows (libyaml, ruamel, Go's yaml.v3 and Psych accept it; PyYAML alone refuses
    it): an alias means the latest node of its name."""
    import yaml  # noqa: PLC0415

    merge = "tag:yaml.org,2002:merge"

    class Composer(
        yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer, yaml.resolver.Resolver
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self.repeated: list[tuple[str, int]] = []

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            if not self.check_event(yaml.AliasEvent):  # the node's first event, now ``current_event``
                self.anchors.pop(self.current_event.anchor, None)
            return super().compose_node(parent, index)

        def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:  # str | None; the stubs say a dict
            node = super().compose_mapping_node(anchor)
            seen = set()
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != merge:
                    if (key.tag, key.value) in seen:
                        self.repeated.append((key.value, key.start_mark.line + 1))
                    seen.add((key.tag, key.value))
            return node

    return Composer


def toml_syntax(path: str, text: str) -> Iterable[Finding]:
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover - Python 3.10 only
        import tomli as tomllib  # noqa: PLC0415

    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        yield Finding("toml_parse_error", Severity.ERROR, f"invalid TOML: {str(exc).split(' (at')[0]}", path, line)
    except RecursionError:
        yield _too_deep("toml_parse_error", "TOML", path)


def _too_deep(code: str, language: str, path: str) -> Finding:
    """The parse error of a file nested deeper than its parser's recursion reaches (Python's limit): a thousand
    JSON arrays, a few hundred YAML levels. Whether it parses elsewhere or not, nothing in it was checked."""
    return Finding(code, Severity.ERROR, f"{language} nested too deeply to parse", path)


def trailing_whitespace(path: str, text: str) -> Iterable[Finding]:
    numbers = [number for number, line in enumerate(text.splitlines(), 1) if line != line.rstrip(" \t")]
    if numbers:
        message = f"trailing whitespace on {counted(len(numbers), 'line')}"
        yield Finding("trailing_whitespace", Severity.WARNING, message, path, numbers[0])


_BY_SUFFIX: dict[str, tuple[FileCheck, ...]] = {
    ".json": (json_syntax,),
    ".geojson": (json_syntax,),
    ".ipynb": (json_syntax,),  # Jupyter notebooks
    ".jsonc": (jsonc_syntax,),
    ".code-workspace": (jsonc_syntax,),  # VS Code
    ".yaml": (yaml_syntax,),
    ".yml": (yaml_syntax,),
    ".toml": (toml_syntax,),
}
_BY_NAME: dict[str, tuple[FileCheck, ...]] = {
    "composer.lock": (json_syntax,),
    "pipfile.lock": (json_syntax,),
    ".babelrc": (jsonc_syntax,),
}
# .json files their tools read as JSONC (so is every .json file in a .vscode folder)
_JSONC_NAMES = ("tsconfig*.json", "jsconfig*.json", "devcontainer.json", ".devcontainer.json", "appsettings*.json",
                ".eslintrc.json", ".babelrc.json")  # fmt: skip
_JSONC_JSON = re.compile("|".join(map(fnmatch.translate, _JSONC_NAMES)))
_EVERY_TEXT_FILE: tuple[FileCheck, ...] = (conflict_markers, trailing_whitespace)


def parsers(path: str, settings: Settings) -> tuple[FileCheck, ...]:
    """The checks that parse ``path`` under the configuration's switches (beyond the line checks every text
    file gets)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".py", ".pyi"):
        python = functools.partial(
            python_findings,
            compile_check=settings.detect_python_compile,
            flakes=settings.detect_python_flakes,
        )
        return (python,)
    if suffix in GRAMMARS and settings.detect_other_languages:
        return (syntax_findings,)
    return _data_checks(path)


def _data_checks(path: str) -> tuple[FileCheck, ...]:
    """The parse check of a data file, by its name (case ignored) or suffix: JSON, JSONC, YAML or TOML."""
    folder, _, name = path.lower().rpartition("/")
    suffix = os.path.splitext(name)[1]
    if suffix == ".json" and (_JSONC_JSON.match(name) or folder.rpartition("/")[2] == ".vscode"):
        return (jsonc_syntax,)
    return _BY_NAME.get(name) or _BY_SUFFIX.get(suffix, ())


def check_file(path: str, content: bytes, settings: Settings | None = None) -> list[Finding]:
    """Every file check that applies to ``path``; binary and very large files are skipped, and a file above
    ``detect_max_parsed_kb`` is not parsed (an ``info`` finding says so)."""
    if b"\0" in content[:_BINARY_PROBE]:
        return []
    settings = settings or Settings()
    checks = parsers(path, settings)
    findings = []
    if checks and len(content) > settings.max_parsed_bytes:
        checks = ()
        size, limit = len(content), settings.detect_max_parsed_kb
        message = f"not parsed, so not checked for errors: {size:,} bytes, above detect_max_parsed_kb ({limit} KB)"
        findings.append(Finding("file_too_large_to_parse", Severity.INFO, message, path))
    if len(content) > MAX_CHECKED_BYTES:
        return findings
    text = file_text(content)
    return findings + [finding for check in (*_EVERY_TEXT_FILE, *checks) for finding in check(path, text)]


class ChangeErrorDetector:
    """The default ``ErrorDetector``: file checks on every file the merge combined, then the configured commands.

    Findings depend only on a file's path and content: each blob is checked once per process
    (``blob_findings``, an LRU cache), whichever branches share it.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._findings: functools._lru_cache_wrapper[tuple[Finding, ...]] = functools.lru_cache(maxsize=65536)(
            self._check_blob
        )
        self._modules = ModuleIndex(settings.max_parsed_bytes)

    def blob_findings(self, git: Git, path: str, blob: str) -> tuple[Finding, ...]:
        """The file checks of ``path`` with the content of ``blob``."""
        return self._findings(git, path, blob)

    def _check_blob(self, git: Git, path: str, blob: str) -> tuple[Finding, ...]:
        return tuple(check_file(path, git.read_blob(blob), self.settings))

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        if integration.new_tip is None or integration.new_tip == context.old_tip:
            return ()
        findings = []
        for change in context.merged_files(integration.new_tip):
            if (
                change.new_blob is not None
                and change.is_regular_file
                and self.blob_findings(context.git, change.path, change.new_blob)
            ):
                findings.extend(self._check_change(context, change, integration.new_tip))
        if self.settings.detect_removed_names:
            git, tip, target = context.git, integration.new_tip, context.target_commit
            own = context.own_changes(tip)
            findings.extend(removed_names(git, context.old_tip, target, tip, own, self._modules))
        if context.predict and context.policy.check_commands:
            message = "check commands were not run: a plan makes no worktree (the real run runs them)"
            findings.append(Finding("check_commands_not_run", Severity.INFO, message))
        else:
            findings.extend(self._run_checks(context, integration.new_tip))
        return tuple(findings)

    def _check_change(self, context: BranchContext, change: FileChange, tip: str) -> list[Finding]:
        """The findings of a changed file with any, each marked as introduced by the merge or not: not when the
        same file had it before the merge, on the target (at the path, or where the branch renamed it from) or
        on the branch tip.

        The target's version is checked first: every branch of the target that merges the file shares it, so it
        is usually checked already. The tip's version is checked only for findings the target's does not have
        (a grammar that cannot read a file, such as C with heavy macros, finds the same error in every version).
        """
        assert change.new_blob is not None
        findings = self.blob_findings(context.git, change.path, change.new_blob)
        problems = {_identity(finding) for finding in findings if _is_problem(finding)}
        seen: set[tuple[str, str]] = set()
        earlier = _earlier_versions(context, change, tip)
        while not problems <= seen and (blob := next(earlier, None)) is not None:
            seen.update(_identity(finding) for finding in self.blob_findings(context.git, change.path, blob))
        return [
            _predates(finding) if _is_problem(finding) and _identity(finding) in seen else finding
            for finding in findings
        ]

    def _run_checks(self, context: BranchContext, tip: str) -> list[Finding]:
        """The check commands in order, in one worktree of ``tip``: each sees what the ones before it left there.

        A failing exit is compared with the state before the merge; a hang or a start failure never is. The old
        tip, then (if the command passed there) the target replay the same sequence, each in a worktree of its
        own, as far as the failing command and whatever the ones before it did (a build, then the test that
        needs it); a later failure goes on from there. Checks that pass on the merge run nowhere else.
        """
        commands = context.policy.check_commands
        runs: dict[str, list[Finding | None]] = {}  # commit -> the outcome of each command run there so far

        def outcome(commit: str, index: int) -> Finding | None:
            done = runs.setdefault(commit, [])
            while len(done) <= index:
                done.append(self._command_finding(context, commands[len(done)], commit))
            return done[index]

        findings = []
        for index in range(len(commands)):
            finding = outcome(tip, index)
            if finding is None:
                continue
            before = (context.old_tip, context.target_commit)
            if _failed(finding) and any(_failed(outcome(commit, index)) for commit in before):
                finding = _predates(finding)
            findings.append(finding)
        return findings

    def _command_finding(self, context: BranchContext, command: Command, commit: str) -> Finding | None:
        """Run ``command`` in a worktree of ``commit``; a finding when it fails, None when it passes."""
        limit = self.settings.error_detection_timeout_seconds
        worktree = context.workspace.checkout(
            commit, timeout=context.deadline.limit(limit, Status.FAILED_ERROR_DETECTION)
        )
        label = shlex.join(command)  # as a shell would run it: pasted, it runs this check
        timeout = context.deadline.limit(limit, Status.FAILED_ERROR_DETECTION)
        env = _check_environment(context.workspace.temp_dir(worktree))  # outside: an OSError here is no start failure
        log.info("running `%s` at %s", label, commit)
        started = time.monotonic()
        try:
            done = run_check(
                command,
                cwd=worktree,
                timeout=timeout,
                env=env,
                memory_limit_mb=self.settings.max_memory_mb,
                output_limit=CHECK_OUTPUT_BYTES,
            )
        except ProcessTimeout:
            log.info("`%s` timed out after %s s", label, seconds(timeout))
            return Finding("check_command_timeout", Severity.ERROR, f"`{label}` timed out after {seconds(timeout)} s")
        except OSError as exc:
            log.info("`%s` could not start: %s", label, exc.strerror)
            return Finding("check_command_not_found", Severity.ERROR, f"`{label}` could not start: {exc.strerror}")
        took = seconds(time.monotonic() - started)
        if done.returncode == 0:
            log.info("`%s` exited 0 after %s s", label, took)
            return None
        output = (done.stdout + done.stderr).decode("utf-8", "replace")
        dropped = f" (the first {done.dropped} bytes not kept)" if done.dropped else ""
        log.info("`%s` exited %d after %s s; its output%s:\n%s", label, done.returncode, took, dropped, output)
        return Finding("check_command_failed", Severity.ERROR, f"`{label}` exited {done.returncode}{_tail(output)}")


def _check_environment(temp_dir: Path) -> dict[str, str]:
    """This process's environment for a check command: no repository location (``Git``'s own), none of
    ``_HARNESS_VARIABLES``, and ``temp_dir`` as ``TMPDIR``."""
    env = without_repository_variables()
    for name in _HARNESS_VARIABLES:
        env.pop(name, None)
    return {**env, "TMPDIR": str(temp_dir)}


def blocking_summary(findings: Sequence[Finding]) -> str:
    """The ``error_message`` of a branch that error detection stopped."""
    blocking = [finding for finding in findings if finding.blocks]
    described = first_and_more([_describe(finding) for finding in blocking], 5)
    return f"Error detection found {counted(len(blocking), 'error')} introduced by the merge: {described}"


def _describe(finding: Finding) -> str:
    where = f" in {finding.place}" if finding.place else ""
    return f"{finding.code}{where} ({finding.message})"


def _earlier_versions(context: BranchContext, change: FileChange, tip: str) -> Iterator[str]:
    """The blobs of a merged file before the merge, cheapest first: the target's, the branch tip's, and where
    the target has no file at the path, the target's file that the branch renamed to it (found as
    ``git diff -M`` pairs them, a ``diff-tree`` process: read only when the others leave a finding unexplained).
    """
    git = context.git
    target = git.blob_at(context.target_commit, change.path)
    if target is not None:
        yield target
    if change.old_blob is not None:
        yield change.old_blob
    if target is None:
        gone = [path for path, entry in context.own_changes(tip).items() if entry is None]
        for renamed in git.changed_files(context.target_commit, tip, [change.path, *gone], renames=True):
            if renamed.path == change.path and renamed.old_path and renamed.old_blob:
                yield renamed.old_blob


def _failed(finding: Finding | None) -> bool:
    """Whether a check command ran and exited non-zero: it did not pass, hang, or fail to start."""
    return finding is not None and finding.code == "check_command_failed"


def _is_problem(finding: Finding) -> bool:
    """A finding that may block the branch, not a note (``info``): the ones compared with the state before."""
    return finding.severity is not Severity.INFO


def _identity(finding: Finding) -> tuple[str, str]:
    """What makes two findings of one file the same: the code, and the message where it names its subject
    (an undefined name the merge adds is new even when the file lacked another one before).

    A parse error is its code alone: a parser stops at the first error, so a version that did not parse says
    nothing of the rest of the file. Its message would fail a branch whose merge only changed which of a
    side's errors comes first (the target's own two, the branch having fixed the first); what a side's
    parse error would hide is kept small by parsing each file's dialect (JSONC, YAML's tags) instead."""
    return finding.code, finding.message if finding.code in NAMED_CODES else ""


def _predates(finding: Finding) -> Finding:
    message = f"{finding.message} (before the merge too)"
    return replace(finding, severity=Severity.WARNING, introduced=False, message=message)


def _tail(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return f": {lines[-1][:200]}" if lines else ""
