"""The YAML configuration: spec defaults, our keys, per-target overrides, one clear error per mistake."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest

from alignment.config import Settings, from_mapping, load_settings, repository_to_align
from alignment.errors import ConfigError, UsageProblem
from alignment.model import Strategy

SPEC_EXAMPLE = """
orchestration:
  # Parallel execution settings
  enable_parallelization: true
  max_workers_per_target: 4

  # Timeout settings
  branch_alignment_timeout_seconds: 300
  integration_timeout_seconds: 60
  error_detection_timeout_seconds: 30

  # Rollback settings
  enable_backup_branches: true
  backup_branch_prefix: "backup"
  auto_cleanup_backups: false

  # Circuit breaker settings
  enable_circuit_breaker: true
  failure_threshold_percent: 50
  failure_threshold_count: 5

  # Logging settings
  log_level: "INFO"
  log_per_branch: true
  audit_trail_enabled: true

  # Resource management
  max_memory_mb: 500
  max_concurrent_git_ops: 8
"""


def test_the_spec_block_loads_and_equals_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "alignment.yaml"
    path.write_text(SPEC_EXAMPLE, encoding="utf-8")
    assert load_settings(path) == Settings()


def test_no_config_means_defaults() -> None:
    assert load_settings(None) == Settings()
    assert from_mapping(None) == Settings()
    assert from_mapping({"orchestration": None}) == Settings()


def test_our_keys_and_per_target_overrides() -> None:
    settings = from_mapping(
        {
            "orchestration": {
                "max_workers_per_target": 3,
                "integration_strategy": "merge",
                "check_commands": ["git diff --check", ["git", "status"]],
                "reports_dir": "out",
                "repo_path": "/repo",
                "targets": {"scientific": {"integration_strategy": "rebase", "max_workers": 1, "check_commands": []}},
            }
        }
    )
    main = settings.policy("main")
    assert (main.strategy, main.max_workers) == (Strategy.MERGE, 3)
    assert main.check_commands == (("git", "diff", "--check"), ("git", "status"))
    scientific = settings.policy("scientific")
    assert (scientific.strategy, scientific.max_workers, scientific.check_commands) == (Strategy.REBASE, 1, ())


def test_disabling_parallelization_means_one_worker_per_target() -> None:
    settings = from_mapping({"orchestration": {"enable_parallelization": False, "targets": {"x": {"max_workers": 8}}}})
    assert settings.policy("main").max_workers == 1
    assert settings.policy("x").max_workers == 1


def test_settings_round_trip_through_plain_data() -> None:
    settings = from_mapping(
        {"orchestration": {"check_commands": ["git a"], "targets": {"t": {"integration_strategy": "rebase"}}}}
    )
    assert from_mapping({"orchestration": msgspec.to_builtins(settings)}) == settings


@pytest.mark.parametrize(
    ("orchestration", "message"),
    [
        (
            {"max_workers_per_targt": 2},
            "orchestration.max_workers_per_targt: unknown key (did you mean max_workers_per_target?)",
        ),
        ({"zzz": 1}, "orchestration.zzz: unknown key (known keys:"),
        (
            {"enable_parallelization": "yes"},
            'orchestration.enable_parallelization: expected true or false, got "yes"',
        ),
        ({"max_workers_per_target": 0}, "orchestration.max_workers_per_target: expected an integer >= 1, got 0"),
        ({"max_workers_per_target": True}, "expected an integer >= 1, got true"),
        ({"branch_alignment_timeout_seconds": 0}, "expected a number > 0 and <= 31536000, got 0"),
        # JSON, which carries the settings to xdist workers, has no infinity
        ({"integration_timeout_seconds": float("inf")}, "expected a number > 0 and <= 31536000, got Infinity"),
        ({"failure_threshold_percent": 150}, "expected a number from 0 to 100, got 150"),
        ({"explain_budget_merges": -1}, "orchestration.explain_budget_merges: expected an integer >= 0, got -1"),
        (
            {"explain_budget_seconds": 0},
            "orchestration.explain_budget_seconds: expected a number > 0 and <= 31536000, got 0",
        ),
        ({"log_level": "LOUD"}, 'expected one of CRITICAL, DEBUG, ERROR, INFO, WARNING, got "LOUD"'),
        ({"integration_strategy": "squash"}, 'expected one of merge, rebase, got "squash"'),
        ({"backup_branch_prefix": "bad prefix"}, "'bad prefix' cannot start a branch name"),
        ({"backup_branch_prefix": ""}, "expected a non-empty string"),
        ({"check_commands": "make"}, 'orchestration.check_commands: expected a list of commands, got "make"'),
        ({"check_commands": [3]}, "orchestration.check_commands[0]: expected a string or a list of strings, got 3"),
        ({"check_commands": ["'unclosed"]}, "orchestration.check_commands[0]: cannot split command"),
        ({"check_commands": [""]}, "orchestration.check_commands[0]: expected a command, got an empty one"),
        # the operating system cannot pass a NUL byte: every branch would fail with an exception instead
        (
            {"check_commands": ["true", ["echo", "a\0b"]]},
            'orchestration.check_commands[1]: expected no NUL byte in a command, got "a\\u0000b"',
        ),
        (
            {"targets": {"main": {"check_commands": ["echo a\0b"]}}},
            "orchestration.targets.main.check_commands[0]: expected no NUL byte in a command",
        ),
        (  # nor half of a UTF-16 pair, which is not text
            {"check_commands": [["echo", "\ud800"]]},
            'orchestration.check_commands[0]: argument "\\ud800" contains a lone surrogate (half of a UTF-16 pair)',
        ),
        ({"\ud800": 1}, 'orchestration."\\ud800": contains a lone surrogate'),
        ({"targets": []}, "orchestration.targets: expected a mapping of target names, got []"),
        ({"targets": [1]}, "orchestration.targets: expected a mapping of target names, got a list"),
        ({"targets": {"a b": {}}}, "orchestration.targets.a b: expected a target branch name"),
        ({"targets": {"main": 3}}, "orchestration.targets.main: expected a mapping, got 3"),
        (
            {"targets": {"main": {"workers": 2}}},
            "orchestration.targets.main.workers: unknown key (did you mean max_workers?)",
        ),
        (
            {"targets": {"main": {"max_workers": -1}}},
            "orchestration.targets.main.max_workers: expected an integer >= 1",
        ),
    ],
)
def test_bad_values_name_the_key(orchestration: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        from_mapping({"orchestration": orchestration}, "alignment.yaml")
    assert str(raised.value).startswith("alignment.yaml: ")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "expected a mapping with an 'orchestration' key"),
        ("orchestraton: {}\n", "orchestraton: unknown key (did you mean orchestration?)"),
        ("orchestration: 3\n", "orchestration: expected a mapping, got 3"),
        ("orchestration:\n  a: [\n", "line 3, column 1: invalid YAML"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "alignment.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert message in str(raised.value)


def test_an_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("orchestration", "key"),
    [
        ({"integration_strategy": "rebase"}, "orchestration.integration_strategy"),
        ({"targets": {"sci": {"integration_strategy": "rebase"}}}, "orchestration.targets.sci.integration_strategy"),
    ],
)
def test_rebase_without_backups_is_refused(orchestration: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"{key}: rebase needs enable_backup_branches"):
        from_mapping({"orchestration": {"enable_backup_branches": False, **orchestration}})


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    orchestration = {
        "max_workers_per_targt": 2,
        "log_level": "LOUD",
        "check_commands": ["'unclosed", ""],
        "targets": {"main": {"workers": 2, "max_workers": 0}},
    }
    with pytest.raises(ConfigError) as raised:
        from_mapping({"orchestration": orchestration}, "alignment.yaml")
    assert str(raised.value) == (
        "alignment.yaml: 6 problems: "
        "orchestration.max_workers_per_targt: unknown key (did you mean max_workers_per_target?); "
        'orchestration.log_level: expected one of CRITICAL, DEBUG, ERROR, INFO, WARNING, got "LOUD"; '
        "orchestration.check_commands[0]: cannot split command: No closing quotation; "
        "orchestration.check_commands[1]: expected a command, got an empty one; "
        "orchestration.targets.main.workers: unknown key (did you mean max_workers?); "
        "orchestration.targets.main.max_workers: expected an integer >= 1, got 0"
    )


@pytest.mark.parametrize(
    ("orchestration", "message"),
    [
        ({"targets": {1: {}}}, "orchestration.targets.1: expected a string key, got 1"),
        ({"remote": "-x"}, 'orchestration.remote: expected the name of a git remote, got "-x"'),
        ({"remote_backups": "refs/x"}, "orchestration.remote_backups: expected remote, local or a ref namespace"),
        ({"check_commands": [["a", 1]]}, "orchestration.check_commands[0]: expected a string or a list of strings"),
    ],
)
def test_rules_past_the_type_name_the_key(orchestration: dict[object, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_mapping({"orchestration": orchestration}, "alignment.yaml")


@pytest.mark.parametrize(
    ("orchestration", "key"),
    [
        ({"check_commands": ["git status", "mypyy --strict ."]}, "orchestration.check_commands[1]"),
        (
            {"targets": {"main": {"check_commands": [["mypyy", "--strict", "."]]}}},
            "orchestration.targets.main.check_commands[0]",
        ),
    ],
)
def test_a_check_commands_program_not_on_path_is_refused_with_the_file(
    tmp_path: Path, orchestration: dict[str, object], key: str
) -> None:
    """It could not start on any branch: every merged branch would fail ``check_command_not_found``."""
    path = tmp_path / "alignment.yaml"
    path.write_text(json.dumps({"orchestration": orchestration}), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    assert str(raised.value) == f'{path}: {key}: program "mypyy" not found on PATH'


def test_a_check_command_named_by_its_path_is_looked_for_when_it_runs() -> None:
    """The repository or an earlier check command may hold it: only the worktree it runs in can say."""
    settings = from_mapping({"orchestration": {"check_commands": ["./scripts/check --all", "build/test"]}})
    assert settings.check_commands == ("./scripts/check --all", "build/test")


def test_the_files_paths_are_relative_to_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As pytest's ini paths are to the ini file: a ``repo_path: .`` kept in the repository means that one,
    wherever the run starts. A ``reports_dir`` the file does not set stays ``reports`` where the run starts."""
    folder = tmp_path / "repo" / "ci"
    folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "repo"))
    path = folder / "alignment.yaml"
    path.write_text("orchestration:\n  repo_path: ..\n  reports_dir: out\n", encoding="utf-8")
    assert (load_settings("repo/ci/alignment.yaml").repo_path, load_settings(path).reports_dir) == (
        str(tmp_path / "repo"),
        str(folder / "out"),
    )
    path.write_text(f"orchestration:\n  repo_path: ~/ci\n  reports_dir: {tmp_path}\n", encoding="utf-8")
    assert (load_settings(path).repo_path, load_settings(path).reports_dir) == (str(folder), str(tmp_path))
    path.write_text("orchestration:\n  repo_path: null\n", encoding="utf-8")
    assert (load_settings(path).repo_path, load_settings(path).reports_dir) == (None, "reports")


def test_a_repo_path_that_does_not_exist_is_refused_only_where_it_is_used(tmp_path: Path) -> None:
    """A file shared between machines may name a path only one of them has: a run that names its own
    repository does not use it; one that does is told the key and the path it came to."""
    path = tmp_path / "ci" / "alignment.yaml"
    path.parent.mkdir()
    path.write_text("orchestration:\n  repo_path: ../repo\n", encoding="utf-8")
    settings = load_settings(path)
    assert repository_to_align(settings, tmp_path) == tmp_path
    with pytest.raises(UsageProblem) as raised:
        repository_to_align(settings, None, path)
    assert str(raised.value) == f"{path}: orchestration.repo_path: no such directory: {tmp_path / 'repo'}"
    (tmp_path / "repo").mkdir()
    assert repository_to_align(settings, None) == str(tmp_path / "repo")
