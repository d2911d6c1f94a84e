"""The YAML configuration: the spec's ``orchestration:`` keys with the spec's defaults, plus this tool's own.

Everything lives under one top-level ``orchestration:`` mapping. ``targets:`` overrides the integration
strategy, check commands and worker count for one target. The models are msgspec structs: their types
check the file and give its JSON Schema (``alignment schema config``); the rules past a type (a prefix git
accepts as part of a branch name, a command that splits, its program on PATH) are the ``_CHECKS`` below.
Every problem of a file is one ``ConfigError`` that names the key and, for an unknown key, the closest known
one. A file's ``repo_path`` and ``reports_dir`` are relative to its directory.
"""

from __future__ import annotations

import difflib
import os
import shlex
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from alignment.errors import ConfigError, UsageProblem, shown
from alignment.model import Strategy
from alignment.names import NOT_TEXT, invalid_branch_name, lone_surrogate
from alignment.processes import program_found
from alignment.validation import Check, problems_of

Command = tuple[str, ...]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400 * 365)]  # finite: JSON has no infinity
Text = Annotated[str, msgspec.Meta(min_length=1)]
Commands = Annotated[
    tuple[Annotated[str | Command, msgspec.Meta(extra={"expected": "a string or a list of strings"})], ...],
    msgspec.Meta(
        description="Commands run in the merged tree; a string is split like a shell would (never run by one).",
        extra={"expected": "a list of commands"},
    ),
]


class TargetPolicy(msgspec.Struct, frozen=True):
    """How the branches of one target are aligned, after per-target overrides."""

    strategy: Strategy
    check_commands: tuple[Command, ...]
    max_workers: int


class TargetOverride(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The ``targets.<name>:`` section; None means "as the top level says"."""

    integration_strategy: Strategy | None = None
    check_commands: Commands | None = None
    max_workers: PositiveInt | None = None


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The validated configuration. Field names are the YAML keys."""

    enable_parallelization: bool = True
    max_workers_per_target: PositiveInt = 4
    branch_alignment_timeout_seconds: Seconds = 300
    integration_timeout_seconds: Seconds = 60
    error_detection_timeout_seconds: Seconds = 30
    enable_backup_branches: bool = True
    backup_branch_prefix: Text = "backup"
    auto_cleanup_backups: bool = False
    enable_circuit_breaker: bool = True
    failure_threshold_percent: Annotated[float, msgspec.Meta(ge=0, le=100)] = 50
    failure_threshold_count: PositiveInt = 5
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_per_branch: bool = True
    audit_trail_enabled: bool = True
    max_memory_mb: PositiveInt = 500
    max_concurrent_git_ops: PositiveInt = 8
    repo_path: Text | None = None
    integration_strategy: Strategy = Strategy.MERGE
    check_commands: Commands = ()
    reports_dir: Text = "reports"
    write_commit_graph: bool = True
    explain_budget_merges: Annotated[int, msgspec.Meta(ge=0)] = 24
    explain_budget_seconds: Seconds = 3
    detect_python_compile: bool = True
    detect_python_flakes: bool = True
    detect_removed_names: bool = True
    detect_other_languages: bool = True
    detect_max_parsed_kb: PositiveInt = 512
    integration_utility: Text | None = None
    error_detector: Text | None = None
    doc_generator: Text | None = None
    remote: Text | None = None
    remote_backups: Text = "remote"
    push_atomic_per_target: bool = False
    targets: Annotated[dict[str, TargetOverride], msgspec.Meta(extra={"expected": "a mapping of target names"})] = (
        msgspec.field(default_factory=dict)
    )

    @property
    def max_parsed_bytes(self) -> int:
        """The largest file error detection parses: parsing takes 75-190 times the file's size in memory."""
        return self.detect_max_parsed_kb * 1024

    def policy(self, target: str) -> TargetPolicy:
        """The effective strategy, check commands and worker limit for ``target``."""
        override = self.targets.get(target, TargetOverride())
        workers = override.max_workers if override.max_workers is not None else self.max_workers_per_target
        commands = self.check_commands if override.check_commands is None else override.check_commands
        return TargetPolicy(
            strategy=override.integration_strategy or self.integration_strategy,
            check_commands=tuple(_argv(command) for command in commands),
            max_workers=workers if self.enable_parallelization else 1,
        )

    def unused_targets(self, targets: Collection[str]) -> tuple[str, ...]:
        """A line for each ``targets:`` key that is none of ``targets`` (the input's), with the closest one.

        A misspelt key would leave its target as the top level says, unnoticed; a key for a target that only
        another input has is legitimate in a shared file, so this is a note, not a ``ConfigError``.
        """
        lines = []
        for name in self.targets:
            if name not in targets:
                close = difflib.get_close_matches(name, list(targets), n=1)
                hint = f"did you mean {close[0]}?" if close else f"the input's targets: {', '.join(targets)}"
                lines.append(
                    f"orchestration.targets.{name}: no branch of the input has this target, "
                    f"so its overrides are not used ({hint})"
                )
        return tuple(lines)


class ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A whole ``alignment.yaml``: one ``orchestration`` mapping (absent or empty: the defaults)."""

    orchestration: Settings | None = None


def load_settings(path: str | Path | None) -> Settings:
    """Read the configuration at ``path``; None means the defaults."""
    if path is None:
        return Settings()
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    import yaml  # noqa: PLC0415 - only a process that reads a config file pays for PyYAML

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(source, where, f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"invalid YAML: {exc}") from None
    return _from_directory(from_mapping(data, str(source)), data, source)


PATH_KEYS = ("repo_path", "reports_dir")


def _from_directory(settings: Settings, data: object, source: Path) -> Settings:
    """``settings`` with the file's own ``PATH_KEYS`` relative to its directory, as pytest's ini paths are to
    the ini file (not to wherever the run starts: a ``repo_path: .`` kept in the repository means it); ``~`` is
    the home directory. Only resolved: ``repository_to_align`` checks a ``repo_path`` where it is used."""
    given = data.get("orchestration") if isinstance(data, Mapping) else None
    if not isinstance(given, Mapping):
        return settings
    base = os.path.abspath(source.parent)
    paths = {
        key: os.path.normpath(os.path.join(base, os.path.expanduser(given[key])))
        for key in PATH_KEYS
        if given.get(key) is not None
    }
    return msgspec.structs.replace(settings, **paths)


def repository_to_align(
    settings: Settings, given: str | Path | None, source: str | Path | None = None
) -> str | Path | None:
    """The repository a run aligns: ``given`` (``--repo``, ``run(repo_path=...)``), else the configuration's
    ``repo_path`` (from the file ``source``, named in the error), which must exist then. Checked here, not on
    loading: a file shared between machines may name a path only one of them has, and a run that names its own
    repository does not use it."""
    if given is not None or settings.repo_path is None:
        return given
    if not os.path.exists(settings.repo_path):
        where = "" if source is None else f"{source}: "
        raise UsageProblem(f"{where}orchestration.repo_path: no such directory: {settings.repo_path}")
    return settings.repo_path


def from_mapping(data: object, source: str = "<config>") -> Settings:
    """Validate already-parsed configuration ``data`` (a mapping with one ``orchestration`` key).

    Every problem is collected first, then raised as one ``ConfigError``; nothing is half applied.
    """
    if data is None:
        return Settings()
    if not isinstance(data, Mapping):
        raise ConfigError(source, "", "expected a mapping with an 'orchestration' key at the top level")
    problems = problems_of(data, ConfigFile, "", _CHECKS)
    if problems:
        raise ConfigError.of_all(source, problems)
    settings = msgspec.convert(data, ConfigFile).orchestration or Settings()
    _require_backups_for_rebase(settings, source)
    return settings


def _require_backups_for_rebase(settings: Settings, source: str) -> None:
    """A rebase rewrites the branch's commits: without a backup the old ones survive only in the reflog."""
    if settings.enable_backup_branches:
        return
    for target, override in [("", None), *settings.targets.items()]:
        strategy = override.integration_strategy if override else settings.integration_strategy
        if strategy is Strategy.REBASE:
            key = (
                f"orchestration.targets.{target}.integration_strategy"
                if target
                else "orchestration.integration_strategy"
            )
            raise ConfigError(
                source, key, "rebase needs enable_backup_branches: true (it rewrites the branch's commits)"
            )


def check_remote_name(name: str, source: str, key: str = "") -> str:
    """A remote's name as given (``--remote``, config ``remote``): it becomes part of a ref name."""
    for _, problem in _remote_name(name):
        raise ConfigError(source, key, problem)
    return name


def _remote_name(name: str) -> Iterator[tuple[str, str]]:
    if name.startswith("-") or invalid_branch_name(name):
        yield "", f"expected the name of a git remote, got {shown(name)}"


def _prefix(text: str) -> Iterator[tuple[str, str]]:
    problem = invalid_branch_name(f"{text}-x-pre-align")
    if problem:
        yield "", f"{text!r} cannot start a branch name: it {problem}"


def _backup_place(text: str) -> Iterator[tuple[str, str]]:
    """``remote`` (beside the branch on the remote), ``local`` (here), or a ref namespace on the remote."""
    if text not in ("remote", "local") and (
        not text.startswith("refs/") or not text.endswith("/") or invalid_branch_name(text + "x")
    ):
        yield "", f"expected remote, local or a ref namespace like 'refs/backups/', got {shown(text)}"


def _argv(command: str | Command) -> Command:
    """A command as its arguments: a string is split like a shell would (never run by one)."""
    return tuple(shlex.split(command)) if isinstance(command, str) else command


def _commands(commands: list[str | list[str]]) -> Iterator[tuple[str, str]]:
    for index, command in enumerate(commands):
        try:
            argv = _argv(tuple(command) if isinstance(command, list) else command)
        except ValueError as exc:
            yield f"[{index}]", f"cannot split command: {exc}"
            continue
        problem = _argv_problem(argv)
        if problem:
            yield f"[{index}]", problem


def _argv_problem(argv: Command) -> str | None:
    """Why ``argv`` cannot start on any branch, or None: found now, not as a failure of every merged branch."""
    if not argv:
        return "expected a command, got an empty one"
    for argument in argv:
        if "\0" in argument:  # no program can be given it
            return f"expected no NUL byte in a command, got {shown(argument)}"
        if lone_surrogate(argument):  # nor this
            return f"argument {shown(argument)} {NOT_TEXT}"
    # a program named by its path may be one the repository or an earlier check command holds: found when run
    if os.sep not in argv[0] and not program_found(argv[0], None):
        return f"program {shown(argv[0])} not found on PATH"
    return None


def _target_names(targets: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for name in targets:
        if invalid_branch_name(name):
            yield f".{name}", "expected a target branch name"


_CHECKS: dict[str, Check] = {
    "backup_branch_prefix": _prefix,
    "remote": lambda name: _remote_name(name) if name is not None else (),
    "remote_backups": _backup_place,
    "check_commands": lambda commands: _commands(commands) if commands is not None else (),
    "targets": _target_names,
}
