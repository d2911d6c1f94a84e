"""The three pluggable steps of a branch's alignment and what they are given.

``IntegrationUtility`` (integrate), ``ErrorDetector`` (detect errors) and ``DocGenerator`` (document) are
typing Protocols: any object with the method fits. Which objects a run uses is ``registry.Components``' choice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from alignment.config import Settings, TargetPolicy
from alignment.errors import StepFailed, seconds
from alignment.git import Conflict, Git
from alignment.model import (
    Action,
    BranchSpec,
    CommitInfo,
    Culprit,
    ErrorCode,
    FileChange,
    Finding,
    Status,
    Unexplained,
)

if TYPE_CHECKING:
    from alignment.workspace import Workspace


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
            raise StepFailed(status, [ErrorCode.TIMEOUT], f"branch alignment timed out after {seconds(self.seconds)} s")
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
    predict: bool = False  # a plan (``--plan``): predict the outcome; no worktree, no check commands
    _merged: dict[str, tuple[FileChange, ...]] = field(default_factory=dict, compare=False, repr=False)
    _own: dict[str, dict[str, tuple[str, str] | None]] = field(default_factory=dict, compare=False, repr=False)

    def own_changes(self, new_tip: str) -> dict[str, tuple[str, str] | None]:
        """The files ``new_tip`` has differently from the target (path -> ``(mode, object id)``, None where
        deleted): what the branch brings to it. Computed once per branch."""
        if new_tip not in self._own:
            self._own[new_tip] = self.git.tree_changes(self.target_commit, new_tip)
        return self._own[new_tip]

    def merged_files(self, new_tip: str) -> tuple[FileChange, ...]:
        """Files whose content at ``new_tip`` neither the old tip nor the target had (``Git.combined_files``):
        what the integration itself combined. Computed once per branch."""
        if new_tip not in self._merged:
            self._merged[new_tip] = (
                self.git.combined_files(self.old_tip, new_tip, self.own_changes(new_tip))
                if new_tip != self.old_tip
                else ()
            )
        return self._merged[new_tip]

    @property
    def branch(self) -> str:
        return self.spec.name

    @property
    def target(self) -> str:
        return self.spec.target


@dataclass(frozen=True)
class Integration:
    """What integration produced: the commit the branch should move to, or the conflicts that stop it;
    ``notes`` for the branch's result, log and change document (e.g. the commits a rebase dropped)."""

    action: Action
    new_tip: str | None
    conflicts: tuple[Conflict, ...] = ()
    notes: tuple[str, ...] = ()


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
    notes: tuple[str, ...] = ()  # the result's notes so far


@runtime_checkable
class IntegrationUtility(Protocol):
    """Bring the target into the branch and return the resulting commit; never move a ref."""

    def integrate(self, context: BranchContext) -> Integration: ...


@runtime_checkable
class ErrorDetector(Protocol):
    """Find problems in the integrated commit before the branch moves to it."""

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]: ...


@runtime_checkable
class DocGenerator(Protocol):
    """Write the change document of one branch and return its path."""

    def document(self, record: ChangeRecord) -> str: ...
