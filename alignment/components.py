"""The three pluggable steps of a branch's alignment and what they are given.

``IntegrationUtility`` (Task 077), ``ErrorDetector`` (Task 076) and ``DocGenerator`` (Task 078) are typing
Protocols: any object with the method fits. The library's defaults are ``MergeOrRebaseIntegrator``,
``ChangeErrorDetector`` and ``MarkdownDocGenerator``; the configuration can name others by dotted path
(``integration_utility: "mypackage.steps:MyIntegrator"``), each a class or factory called with the
``Settings``: the seed's factory / interface pattern.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from alignment.config import Settings, TargetPolicy
from alignment.errors import ConfigError, GitError, StepFailed
from alignment.git import Conflict, Git
from alignment.model import Action, BranchSpec, CommitInfo, Culprit, FileChange, Finding, Status, Unexplained

if TYPE_CHECKING:
    from alignment.workspace import Workspace

P = TypeVar("P")


class Deadline:
    """What is left of a time budget; ``limit`` turns it into a timeout for one step."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._ends - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def limit(self, step_seconds: float, status: Status) -> float:
        """A step's timeout: its own limit cut to what is left; ``StepFailed(timeout)`` when nothing is."""
        remaining = self.remaining()
        if remaining <= 0:
            raise StepFailed(status, ["timeout"], f"branch alignment timed out after {self.seconds:g} s")
        return min(step_seconds, remaining)


@dataclass(frozen=True)
class BranchContext:
    """Everything a step may use for one branch. Steps never move refs: the pipeline does, at the end."""

    git: Git
    spec: BranchSpec
    old_tip: str
    target_commit: str
    relation: Action
    policy: TargetPolicy
    settings: Settings
    deadline: Deadline
    workspace: Workspace
    run_id: str
    changes_dir: Path
    planning: bool = False  # a plan (``--plan``): predict the outcome; no worktree, no check commands
    _merged: dict[str, tuple[FileChange, ...]] = field(default_factory=dict, compare=False, repr=False)

    def merged_files(self, new_tip: str) -> tuple[FileChange, ...]:
        """Files whose content at ``new_tip`` neither the old tip nor the target had: what the integration
        itself combined, with +/- counts against the old tip. Computed once per branch.

        Every other file the alignment changes comes unchanged from the target. Finding these costs what the
        branch's own changes cost, not what the target brings in: ``new_tip`` is diffed against the target
        (a few files: the branch's work), and each of those is compared with the old tip's entry.
        """
        if new_tip not in self._merged:
            self._merged[new_tip] = self._combined(new_tip) if new_tip != self.old_tip else ()
        return self._merged[new_tip]

    def _combined(self, new_tip: str) -> tuple[FileChange, ...]:
        candidates = self.git.tree_changes(self.target_commit, new_tip)
        before = self.git.entries_at(self.old_tip, candidates)
        paths = sorted(path for path, entry in candidates.items() if before[path] != entry)
        merged = self.git.changed_files(self.old_tip, new_tip, paths)
        if len(merged) != len(paths):  # each of them differs from the old tip: git must list every one
            missing = sorted(set(paths) - {change.path for change in merged})
            raise GitError(("diff-tree", self.old_tip, new_tip), 1, f"git did not list changed files {missing[:5]}")
        return merged

    @property
    def branch(self) -> str:
        return self.spec.name

    @property
    def target(self) -> str:
        return self.spec.target


@dataclass(frozen=True)
class Integration:
    """What integration produced: the commit the branch should move to, or the conflicts that stop it."""

    action: Action
    new_tip: str | None
    conflicts: tuple[Conflict, ...] = ()


@dataclass(frozen=True)
class ChangeRecord:
    """What the change document describes: the outcome so far of one branch's alignment."""

    context: BranchContext
    status: Status
    action: Action
    new_tip: str | None
    backup_branch: str | None
    merged_files: tuple[FileChange, ...]
    commits: tuple[CommitInfo, ...]
    more_commits: bool
    conflicts: tuple[Conflict, ...]
    findings: tuple[Finding, ...]
    message: str | None
    culprits: tuple[Culprit, ...] = ()
    unexplained: tuple[Unexplained, ...] = ()


@runtime_checkable
class IntegrationUtility(Protocol):
    """Task 077: bring the target into the branch and return the resulting commit; never move a ref."""

    def integrate(self, context: BranchContext) -> Integration: ...


@runtime_checkable
class ErrorDetector(Protocol):
    """Task 076: find problems in the integrated commit before the branch moves to it."""

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]: ...


@runtime_checkable
class DocGenerator(Protocol):
    """Task 078: write the change document of one branch and return its path."""

    def document(self, record: ChangeRecord) -> str: ...


@dataclass(frozen=True)
class Components:
    """The three steps a run uses."""

    integration_utility: IntegrationUtility
    error_detector: ErrorDetector
    doc_generator: DocGenerator

    @classmethod
    def from_settings(cls, settings: Settings) -> Components:
        """The library's defaults, or the classes the configuration names by dotted path."""
        from alignment.detect import ChangeErrorDetector  # noqa: PLC0415 - the steps import this module
        from alignment.document import MarkdownDocGenerator  # noqa: PLC0415
        from alignment.integrate import MergeOrRebaseIntegrator  # noqa: PLC0415

        return cls(
            integration_utility=_component(
                settings, "integration_utility", IntegrationUtility, MergeOrRebaseIntegrator
            ),
            error_detector=_component(settings, "error_detector", ErrorDetector, ChangeErrorDetector),
            doc_generator=_component(settings, "doc_generator", DocGenerator, MarkdownDocGenerator),
        )


def _component(settings: Settings, key: str, protocol: Any, default: Callable[[Settings], P]) -> P:
    """The component ``key`` names (a class or factory taking the settings), checked against ``protocol``."""
    dotted = getattr(settings, key)
    if dotted is None:
        return default(settings)
    module_name, _, attribute = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    where = f"orchestration.{key}"
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError("configuration", where, f"cannot load {dotted!r}: {exc}") from None
    component: P = factory(settings)
    if not isinstance(component, protocol):
        raise ConfigError("configuration", where, f"{dotted!r} does not provide {protocol.__name__}'s method")
    return component
