"""The YAML configuration: the spec's ``orchestration:`` keys with the spec's defaults, plus this tool's own.

Everything lives under one top-level ``orchestration:`` mapping. ``targets:`` overrides the integration
strategy, check commands and worker count for one target (the seed's "context control"). Unknown keys and
wrong types are ``ConfigError``s that name the key and suggest the closest known one.
"""

from __future__ import annotations

import dataclasses
import difflib
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignment.errors import ConfigError, kind_of, shown
from alignment.model import Strategy
from alignment.names import invalid_branch_name

Command = tuple[str, ...]
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class TargetPolicy:
    """How the branches of one target are aligned, after per-target overrides."""

    strategy: Strategy
    check_commands: tuple[Command, ...]
    max_workers: int


@dataclass(frozen=True)
class TargetOverride:
    """The ``targets.<name>:`` section; None means "as the top level says"."""

    integration_strategy: Strategy | None = None
    check_commands: tuple[Command, ...] | None = None
    max_workers: int | None = None


@dataclass(frozen=True)
class Settings:
    """The validated configuration. Field names are the YAML keys."""

    enable_parallelization: bool = True
    max_workers_per_target: int = 4
    branch_alignment_timeout_seconds: float = 300
    integration_timeout_seconds: float = 60
    error_detection_timeout_seconds: float = 30
    enable_backup_branches: bool = True
    backup_branch_prefix: str = "backup"
    auto_cleanup_backups: bool = False
    enable_circuit_breaker: bool = True
    failure_threshold_percent: float = 50
    failure_threshold_count: int = 5
    log_level: str = "INFO"
    log_per_branch: bool = True
    audit_trail_enabled: bool = True
    max_memory_mb: int = 500
    max_concurrent_git_ops: int = 8
    repo_path: str | None = None
    integration_strategy: Strategy = Strategy.MERGE
    check_commands: tuple[Command, ...] = ()
    reports_dir: str = "reports"
    write_commit_graph: bool = True
    explain_budget_merges: int = 24
    explain_budget_seconds: float = 3
    detect_python_compile: bool = True
    detect_python_flakes: bool = True
    detect_removed_names: bool = True
    detect_other_languages: bool = True
    integration_utility: str | None = None
    error_detector: str | None = None
    doc_generator: str | None = None
    remote: str | None = None
    remote_backups: str = "remote"
    push_atomic_per_target: bool = False
    targets: Mapping[str, TargetOverride] = field(default_factory=dict, hash=False)

    def policy(self, target: str) -> TargetPolicy:
        """The effective strategy, check commands and worker limit for ``target``."""
        override = self.targets.get(target, TargetOverride())
        workers = override.max_workers if override.max_workers is not None else self.max_workers_per_target
        return TargetPolicy(
            strategy=override.integration_strategy or self.integration_strategy,
            check_commands=self.check_commands if override.check_commands is None else override.check_commands,
            max_workers=workers if self.enable_parallelization else 1,
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings as YAML/JSON-ready data (``from_mapping`` reads it back)."""
        data = {item.name: getattr(self, item.name) for item in dataclasses.fields(self) if item.name != "targets"}
        data["integration_strategy"] = self.integration_strategy.value
        data["check_commands"] = [list(command) for command in self.check_commands]
        data["targets"] = {name: _override_to_dict(override) for name, override in self.targets.items()}
        return data


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
    return from_mapping(data, str(source))


def from_mapping(data: object, source: str = "<config>") -> Settings:
    """Validate already-parsed configuration ``data`` (a mapping with one ``orchestration`` key)."""
    if data is None:
        return Settings()
    if not isinstance(data, Mapping):
        raise ConfigError(source, "", "expected a mapping with an 'orchestration' key at the top level")
    _reject_unknown(data, ("orchestration",), source, "")
    block = data.get("orchestration")
    if block is None:
        return Settings()
    if not isinstance(block, Mapping):
        raise ConfigError(source, "orchestration", f"expected a mapping, got {kind_of(block)}")
    _reject_unknown(block, (*_FIELDS, "targets"), source, "orchestration.")
    values = {key: _FIELDS[key](block[key], source, f"orchestration.{key}") for key in block if key != "targets"}
    values["targets"] = _targets(block.get("targets"), source)
    settings = Settings(**values)
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


Validator = Callable[[object, str, str], Any]


def _boolean(value: object, source: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(source, key, f"expected true or false, got {kind_of(value)}")
    return value


def _integer(minimum: int) -> Validator:
    def check(value: object, source: str, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(source, key, f"expected an integer >= {minimum}, got {shown(value)}")
        return value

    return check


def _number(minimum: float, maximum: float | None = None, *, above: bool = False) -> Validator:
    def check(value: object, source: str, key: str) -> float:
        too_low = isinstance(value, (int, float)) and (value <= minimum if above else value < minimum)
        too_high = maximum is not None and isinstance(value, (int, float)) and value > maximum
        if isinstance(value, bool) or not isinstance(value, (int, float)) or too_low or too_high:
            bound = f"> {minimum:g}" if above else f">= {minimum:g}"
            expected = f"a number from {minimum:g} to {maximum:g}" if maximum is not None else f"a number {bound}"
            raise ConfigError(source, key, f"expected {expected}, got {shown(value)}")
        return float(value)

    return check


def _choice(*choices: str) -> Validator:
    def check(value: object, source: str, key: str) -> str:
        if value not in choices:
            raise ConfigError(source, key, f"expected one of {', '.join(choices)}, got {shown(value)}")
        return str(value)

    return check


def _strategy(value: object, source: str, key: str) -> Strategy:
    return Strategy(_choice(*(item.value for item in Strategy))(value, source, key))


def _text(value: object, source: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(source, key, f"expected a non-empty string, got {shown(value)}")
    return value


def _optional_text(value: object, source: str, key: str) -> str | None:
    return None if value is None else _text(value, source, key)


def _prefix(value: object, source: str, key: str) -> str:
    text = _text(value, source, key)
    problem = invalid_branch_name(f"{text}-x-pre-align")
    if problem:
        raise ConfigError(source, key, f"{text!r} cannot start a branch name: it {problem}")
    return text


def check_remote_name(name: str, source: str, key: str = "") -> str:
    """A remote's name as given (``--remote``, config ``remote``): it becomes part of a ref name."""
    if name.startswith("-") or invalid_branch_name(name):
        raise ConfigError(source, key, f"expected the name of a git remote, got {shown(name)}")
    return name


def _remote_name(value: object, source: str, key: str) -> str | None:
    text = _optional_text(value, source, key)
    return None if text is None else check_remote_name(text, source, key)


def _backup_place(value: object, source: str, key: str) -> str:
    """``remote`` (beside the branch on the remote), ``local`` (here), or a ref namespace on the remote."""
    text = _text(value, source, key)
    if text in ("remote", "local"):
        return text
    if not text.startswith("refs/") or not text.endswith("/") or invalid_branch_name(text + "x"):
        raise ConfigError(
            source, key, f"expected remote, local or a ref namespace like 'refs/backups/', got {shown(value)}"
        )
    return text


def _commands(value: object, source: str, key: str) -> tuple[Command, ...]:
    """A list of commands, each a string (split like a shell would, never run by one) or a list of args."""
    if not isinstance(value, list):
        raise ConfigError(source, key, f"expected a list of commands, got {kind_of(value)}")
    commands = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if isinstance(item, str):
            try:
                argv = shlex.split(item)
            except ValueError as exc:
                raise ConfigError(source, where, f"cannot split command: {exc}") from None
        elif isinstance(item, list) and all(isinstance(arg, str) for arg in item):
            argv = list(item)
        else:
            raise ConfigError(source, where, f"expected a string or a list of strings, got {shown(item)}")
        if not argv:
            raise ConfigError(source, where, "expected a command, got an empty one")
        commands.append(tuple(argv))
    return tuple(commands)


_FIELDS: dict[str, Validator] = {
    "enable_parallelization": _boolean,
    "max_workers_per_target": _integer(1),
    "branch_alignment_timeout_seconds": _number(0, above=True),
    "integration_timeout_seconds": _number(0, above=True),
    "error_detection_timeout_seconds": _number(0, above=True),
    "enable_backup_branches": _boolean,
    "backup_branch_prefix": _prefix,
    "auto_cleanup_backups": _boolean,
    "enable_circuit_breaker": _boolean,
    "failure_threshold_percent": _number(0, 100),
    "failure_threshold_count": _integer(1),
    "log_level": _choice(*_LOG_LEVELS),
    "log_per_branch": _boolean,
    "audit_trail_enabled": _boolean,
    "max_memory_mb": _integer(1),
    "max_concurrent_git_ops": _integer(1),
    "repo_path": _optional_text,
    "integration_strategy": _strategy,
    "check_commands": _commands,
    "reports_dir": _text,
    "write_commit_graph": _boolean,
    "explain_budget_merges": _integer(0),
    "explain_budget_seconds": _number(0, above=True),
    "detect_python_compile": _boolean,
    "detect_python_flakes": _boolean,
    "detect_removed_names": _boolean,
    "detect_other_languages": _boolean,
    "integration_utility": _optional_text,
    "error_detector": _optional_text,
    "doc_generator": _optional_text,
    "remote": _remote_name,
    "remote_backups": _backup_place,
    "push_atomic_per_target": _boolean,
}

_OVERRIDES: dict[str, Validator] = {
    "integration_strategy": _strategy,
    "check_commands": _commands,
    "max_workers": _integer(1),
}


def _targets(value: object, source: str) -> dict[str, TargetOverride]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(source, "orchestration.targets", f"expected a mapping of target names, got {kind_of(value)}")
    overrides = {}
    for name, section in value.items():
        key = f"orchestration.targets.{name}"
        if not isinstance(name, str) or invalid_branch_name(name):
            raise ConfigError(source, key, "expected a target branch name")
        if not isinstance(section, Mapping):
            raise ConfigError(source, key, f"expected a mapping, got {kind_of(section)}")
        _reject_unknown(section, tuple(_OVERRIDES), source, f"{key}.")
        values = {item: _OVERRIDES[item](section[item], source, f"{key}.{item}") for item in section}
        overrides[name] = TargetOverride(**values)
    return overrides


def _reject_unknown(block: Mapping[Any, Any], known: tuple[str, ...], source: str, prefix: str) -> None:
    for key in block:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (known keys: {', '.join(sorted(known))})"
            raise ConfigError(source, f"{prefix}{key}", f"unknown key{hint}")


def _override_to_dict(override: TargetOverride) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if override.integration_strategy is not None:
        data["integration_strategy"] = override.integration_strategy.value
    if override.check_commands is not None:
        data["check_commands"] = [list(command) for command in override.check_commands]
    if override.max_workers is not None:
        data["max_workers"] = override.max_workers
    return data
