"""Shared fixtures: an isolated git environment and real throwaway repositories.

Repositories are built with git plumbing (a private index per commit), so the main worktree is never
touched by the setup either: tests can assert that a run leaves ``git status`` exactly as it was.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

try:
    import hypothesis  # noqa: F401 - the fuzz tests need it
    import jsonschema
except ModuleNotFoundError as missing:  # `pip install -e .` without the dev extras: say so in pytest_configure
    MISSING_DEV_EXTRA: str | None = missing.name
else:
    MISSING_DEV_EXTRA = None

from alignment import ledger
from alignment.config import Settings, from_mapping
from alignment.inputs import parse_branches
from alignment.pipeline import Runtime
from alignment.registry import Components
from alignment.runs import RunFolder
from alignment.session import set_up_run
from plugins.alignment_plugin import STATE as ALIGNMENT_RUN

PROJECT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]
SCHEMA_PATH = PROJECT / "alignment" / "schema" / "alignment_results.schema.json"


def load_schema() -> dict[str, Any]:
    """The JSON Schema of ``alignment_results.json`` that the package ships for its callers."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


FIXED_DATE = "1700000000 +0000"


def pytest_configure(config: pytest.Config) -> None:
    """The project's own tests need the dev extras: without them, one line saying so (``--help`` still works).
    And every warning is an error in them, from the collection (a test module's imports) to the session's end.

    Not for a run of the harness: pytest loads this file in a checkout even for ``--pyargs`` with no path, and
    a run keeps pytest's default warning filters (a user's component that warns must not change an outcome),
    which is why the filter is here and not in pyproject.toml, which every pytest session in the checkout reads.
    """
    if ALIGNMENT_RUN in config.stash:
        return
    if MISSING_DEV_EXTRA is not None and not config.option.help:
        raise pytest.UsageError(
            f"the project's own tests need the dev extras ({MISSING_DEV_EXTRA} is not installed): "
            "pip install -e '.[dev]', or run tox"
        )
    config.addinivalue_line("filterwarnings", "error")


_indexes = itertools.count()


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No user or system git configuration, a fixed identity and fixed dates."""
    home = tmp_path_factory.mktemp("home")
    for name, value in {
        "HOME": str(home),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Test Author",
        "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Committer",
        "GIT_COMMITTER_EMAIL": "committer@example.com",
        "GIT_AUTHOR_DATE": FIXED_DATE,
        "GIT_COMMITTER_DATE": FIXED_DATE,
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def every_result_matches_the_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test publishes (orchestrator, in-process pytest run) is checked against the JSON Schema."""
    publish = ledger.publish
    schema = load_schema()

    def checked(folder: RunFolder, results: Mapping[str, Any]) -> Path:
        jsonschema.validate(results, schema)
        return publish(folder, results)

    monkeypatch.setattr(ledger, "publish", checked)


class Repo:
    """A real repository on disk with helpers to build history without touching its worktree."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str, input: str | None = None, env: Mapping[str, str] | None = None) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.path), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def tip(self, branch: str) -> str:
        return self.git("rev-parse", f"refs/heads/{branch}")

    def exists(self, branch: str) -> bool:
        return bool(self.git("for-each-ref", f"refs/heads/{branch}"))

    def commit(
        self,
        branch: str,
        files: Mapping[str, str | None],
        message: str = "change",
        *,
        parent: str | None = None,
        parents: tuple[str, ...] | None = None,
    ) -> str:
        """Commit ``files`` (None deletes) on ``branch``, on top of ``parent`` (default: the branch tip)."""
        base = parent or (self.tip(branch) if self.exists(branch) else None)
        index = self.path / ".." / f".index-{os.getpid()}-{threading.get_ident()}-{next(_indexes)}"
        env = {"GIT_INDEX_FILE": str(index.resolve())}
        try:
            if base:
                self.git("read-tree", base, env=env)
            else:
                self.git("read-tree", "--empty", env=env)
            for name, content in files.items():
                if content is None:
                    self.git("update-index", "--force-remove", "--", name, env=env)
                    continue
                blob = self.git("hash-object", "-w", "--stdin", input=content)
                self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}", env=env)
            tree = self.git("write-tree", env=env)
        finally:
            index.unlink(missing_ok=True)
        parent_args = [arg for p in (parents or ((base,) if base else ())) for arg in ("-p", p)]
        commit = self.git("commit-tree", tree, *parent_args, input=message)
        self.git("update-ref", f"refs/heads/{branch}", commit)
        return commit

    def branch(self, name: str, at: str) -> str:
        self.git("branch", "--force", name, at)
        return self.tip(name)

    def status(self) -> str:
        return self.git("status", "--porcelain=v1", "--untracked-files=all")

    def read(self, revision: str, path: str) -> str:
        return self.git("show", f"{revision}:{path}")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A repository whose ``main`` has one commit with ``app.py`` and ``README.md``; worktree in sync."""
    return new_repo(tmp_path / "repo")


def new_repo(path: Path, object_format: str = "sha1") -> Repo:
    """The repository of the ``repo`` fixture at ``path``, of ``object_format`` (``sha1``, ``sha256``)."""
    subprocess.run(["git", "init", "-q", "-b", "main", f"--object-format={object_format}", str(path)], check=True)
    created = Repo(path)
    created.commit("main", {"app.py": "def main():\n    return 1\n", "README.md": "# Project\n\nText.\n"}, "initial")
    created.git("reset", "-q", "--hard", "main")
    return created


def write_input(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"branches": entries}), encoding="utf-8")
    return path


def entry(name: str, target: str = "main", **extra: Any) -> dict[str, Any]:
    return {"branch_name": name, "assigned_target": target, "confidence": 0.9, "tags": [], "cluster_id": 0, **extra}


@pytest.fixture
def make_input(tmp_path: Path) -> Callable[..., Path]:
    """Write a ``categorized_branches.json`` for branches named ``name`` or ``(name, target)``."""

    def make(*branches: str | tuple[str, str], file_name: str = "categorized_branches.json") -> Path:
        entries = [entry(item) if isinstance(item, str) else entry(*item) for item in branches]
        return write_input(tmp_path / file_name, entries)

    return make


def with_merge_of_its_own(repo: Repo, branch: str, base: str | None = None) -> str:
    """Fork ``branch`` from ``base`` (main's tip) with a merge of a side branch that also adds a file in the
    merge itself; return its tip."""
    base = base or repo.tip("main")
    side = repo.commit(f"{branch}-side", {"side.txt": "side\n"}, parent=base)
    work = repo.commit(branch, {"own.txt": "own\n"}, parent=base)
    return repo.commit(branch, {"side.txt": "side\n", "fix.txt": "made in the merge\n"}, "merge", parents=(work, side))


def settings(**orchestration: Any) -> Settings:
    return from_mapping({"orchestration": orchestration})


Aligner = Callable[..., dict[str, Any]]


@pytest.fixture
def align(repo: Repo, tmp_path: Path) -> Aligner:
    """Align branches of ``repo`` (names, or ``(name, target)``) in one process; results by branch name."""

    def run(
        *branches: str | tuple[str, str], config: Settings | None = None, components: Components | None = None
    ) -> dict[str, Any]:
        entries = [entry(item) if isinstance(item, str) else entry(*item) for item in branches]
        setup = set_up_run(
            config or Settings(),
            parse_branches({"branches": entries}, "test"),
            repo.path,
            reports_dir=tmp_path / "reports",
            require_targets=False,  # the pipeline's own target_not_found, as run_alignment_for_branch reports it
        )
        try:
            with Runtime(setup, components) as runtime:
                return {spec.name: runtime.align(spec) for spec in setup.branches.branches}
        finally:
            setup.discard_scratch()

    return run


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
