"""Values the engine passes around: enums and frozen dataclasses, turned into plain dicts only at the edge."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

SCHEMA_VERSION = "1.0"


class Status(str, Enum):
    """The spec's per-branch statuses."""

    COMPLETED = "completed"
    FAILED_INTEGRATION = "failed_integration"
    FAILED_ERROR_DETECTION = "failed_error_detection"
    EXCEPTION = "exception"


class ErrorCode(str, Enum):
    """The codes the library reports in ``errors_detected`` for a failure of its own; error detection adds
    its findings' codes (``Finding.code``) beside them."""

    TARGET_NOT_FOUND = "target_not_found"
    BRANCH_NOT_FOUND = "branch_not_found"
    BRANCH_CHECKED_OUT = "branch_checked_out"
    BACKUP_FAILED = "backup_failed"
    UNRELATED_HISTORIES = "unrelated_histories"
    MERGE_CONFLICT_UNRESOLVABLE = "merge_conflict_unresolvable"
    INTEGRATION_FAILED = "integration_failed"
    TIMEOUT = "timeout"
    BRANCH_MOVED = "branch_moved"
    REF_LOCKED = "ref_locked"
    INTERRUPTED = "interrupted"
    UNEXPECTED_ERROR = "unexpected_error"
    WORKER_CRASHED = "worker_crashed"
    PUSH_REJECTED = "push_rejected"
    PUSH_FAILED = "push_failed"

    def __str__(self) -> str:
        return self.value


class Severity(str, Enum):
    """How much a finding matters: only an ``error`` the merge introduced fails a branch."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Strategy(str, Enum):
    """How the target is brought into a branch."""

    MERGE = "merge"
    REBASE = "rebase"


class Action(str, Enum):
    """What the alignment did (or would have done) to the branch ref."""

    NONE = "none"
    UP_TO_DATE = "up_to_date"
    FAST_FORWARD = "fast_forward"
    MERGE = "merge"
    REBASE = "rebase"


def intended_action(relation: Action, strategy: Strategy) -> Action:
    """What aligning a branch that relates to its target as ``relation`` does: a diverged one (``merge``) is
    merged or rebased, as its target's ``strategy`` says."""
    return Action.REBASE if relation is Action.MERGE and strategy is Strategy.REBASE else relation


@dataclass(frozen=True, slots=True)
class BranchSpec:
    """One entry of ``categorized_branches.json``; ``index`` is its position in the file.

    Only the name and the target are required: ``confidence``, ``tags`` and ``cluster_id`` (the
    classifier's output) are None when the entry leaves them out.
    """

    name: str
    target: str
    confidence: float | None
    tags: tuple[str, ...] | None
    cluster_id: int | None
    index: int
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """The entry as it appeared in the input, extra fields included, left-out optional fields left out."""
        optional = {
            "confidence": self.confidence,
            "tags": None if self.tags is None else list(self.tags),
            "cluster_id": self.cluster_id,
        }
        return {
            **self.extra,
            "branch_name": self.name,
            "assigned_target": self.target,
            **{key: value for key, value in optional.items() if value is not None},
        }


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem error detection found. ``introduced`` is False when it predates the merge."""

    code: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    introduced: bool = True

    @property
    def blocks(self) -> bool:
        """True when this finding fails the branch: an error the merge introduced."""
        return self.severity is Severity.ERROR and self.introduced

    @property
    def place(self) -> str:
        """``file:line``, or ``file``, or empty for a finding of no file (a check command's)."""
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "introduced": self.introduced,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            code=data["code"],
            severity=Severity(data["severity"]),
            message=data["message"],
            file=data.get("file"),
            line=data.get("line"),
            introduced=data.get("introduced", True),
        )


@dataclass(frozen=True, slots=True)
class FileChange:
    """A file the alignment changes on the branch; counts are None for binary files.

    ``new_mode`` is git's file mode after the change: ``120000`` for a symbolic link, ``160000`` for a
    submodule (whose "blob" is a commit of another repository). A renamed file (status ``R``) has the path
    it had before in ``old_path``, and ``old_blob`` and the counts are of that file.
    """

    path: str
    status: str
    added: int | None
    deleted: int | None
    old_blob: str | None
    new_blob: str | None
    new_mode: str = "100644"
    old_path: str | None = None

    @property
    def is_regular_file(self) -> bool:
        return self.new_mode in ("100644", "100755")


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """A commit brought in from the target."""

    oid: str
    author: str
    subject: str


@dataclass(frozen=True, slots=True)
class Culprit:
    """The target commit that makes ``path`` conflict: merging its parent is clean there, merging it is not."""

    path: str
    commit: CommitInfo

    def to_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "commit": self.commit.oid,
            "subject": self.commit.subject,
            "author": self.commit.author,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Culprit:
        return cls(data["path"], CommitInfo(data["commit"], data["author"], data["subject"]))


@dataclass(frozen=True, slots=True)
class Unexplained:
    """Conflicted paths whose cause the search's budget did not reach: it is one of ``candidates`` commits
    of the target's first-parent line, from ``first`` to ``last`` (both included)."""

    paths: tuple[str, ...]
    first: str
    last: str
    candidates: int

    def to_dict(self) -> dict[str, Any]:
        return {"paths": list(self.paths), "first_commit": self.first, "last_commit": self.last,
                "candidates": self.candidates}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Unexplained:
        return cls(tuple(data["paths"]), data["first_commit"], data["last_commit"], data["candidates"])


@dataclass(frozen=True, slots=True)
class PushRecord:
    """A branch of a ``--remote`` run: where its aligned commit is kept locally and what its push did.

    ``pushed`` is True only when ``git push`` reported the ref as landed; ``replaced_tip`` is then the remote
    tip it replaced (the tip that was fetched). ``aligned_ref`` is None when there was nothing to push.
    ``local_backup``: until the push, the local backup (one this run made) that ``auto_cleanup_backups``
    removes once the push landed, so that a push that fails keeps it (in the result only while it waits).
    """

    remote: str
    aligned_ref: str | None
    pushed: bool = False
    replaced_tip: str | None = None
    remote_backup: str | None = None
    local_backup: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "remote": self.remote,
            "pushed": self.pushed,
            "replaced_remote_tip": self.replaced_tip,
            "aligned_ref": self.aligned_ref,
            "remote_backup": self.remote_backup,
        }
        if self.local_backup is not None:
            data["local_backup"] = self.local_backup
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PushRecord:
        return cls(
            data["remote"],
            data["aligned_ref"],
            data["pushed"],
            data["replaced_remote_tip"],
            data["remote_backup"],
            data.get("local_backup"),
        )


@dataclass(frozen=True, slots=True)
class BranchResult:
    """The outcome of one branch; ``to_dict`` gives the spec's per-branch dict plus documented extras."""

    branch: str
    target: str
    status: Status
    seconds: float
    codes: tuple[str, ...] = ()
    message: str | None = None
    document: str | None = None
    action: Action = Action.NONE
    target_commit: str | None = None
    old_tip: str | None = None
    new_tip: str | None = None
    backup_branch: str | None = None
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    started_at: float = 0.0
    finished_at: float = 0.0
    worker: str = ""
    culprits: tuple[Culprit, ...] = ()
    unexplained: tuple[Unexplained, ...] = ()
    planned: bool = False
    push: PushRecord | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is Status.COMPLETED

    @property
    def errors_detected(self) -> list[str]:
        """The codes as the results file and the audit trail write them: an ErrorCode as its plain value."""
        return [str(code) for code in self.codes]

    @property
    def error_message(self) -> str:
        """What a failed branch's results say went wrong: its message, else its status."""
        return self.message or self.status.value

    def to_dict(self) -> dict[str, Any]:
        """Spec keys first (``error_message`` only on failure, ``changes_summary`` only on success)."""
        data: dict[str, Any] = {
            "branch_name": self.branch,
            "status": self.status.value,
            "integration_time_seconds": round(self.seconds, 3),
            "errors_detected": self.errors_detected,
        }
        if self.succeeded:
            data["changes_summary"] = self.document or ""
        else:
            data["error_message"] = self.error_message
        data.update(
            {
                "target_branch": self.target,
                "action": self.action.value,
                "target_commit": self.target_commit,
                "old_tip": self.old_tip,
                "new_tip": self.new_tip,
                "backup_branch": self.backup_branch,
                "document": self.document,
                "findings": [finding.to_dict() for finding in self.findings],
                "notes": list(self.notes),
                "started_at": iso_utc(self.started_at),
                "finished_at": iso_utc(self.finished_at),
                "worker": self.worker,
                "culprits": [culprit.to_dict() for culprit in self.culprits],
                "unexplained": [group.to_dict() for group in self.unexplained],
            }
        )
        if self.planned:
            data["planned"] = True
        if self.push is not None:
            data["push"] = self.push.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BranchResult:
        """Inverse of ``to_dict``: how a result crosses from an xdist worker to the controller."""
        status = Status(data["status"])
        return cls(
            branch=data["branch_name"],
            target=data["target_branch"],
            status=status,
            seconds=float(data["integration_time_seconds"]),
            codes=tuple(data["errors_detected"]),
            message=data.get("error_message"),
            document=data.get("document"),
            action=Action(data["action"]),
            target_commit=data.get("target_commit"),
            old_tip=data.get("old_tip"),
            new_tip=data.get("new_tip"),
            backup_branch=data.get("backup_branch"),
            findings=tuple(Finding.from_dict(item) for item in data.get("findings", ())),
            notes=tuple(data.get("notes", ())),
            started_at=parse_iso_utc(data["started_at"]),
            finished_at=parse_iso_utc(data["finished_at"]),
            worker=data.get("worker", ""),
            culprits=tuple(Culprit.from_dict(item) for item in data.get("culprits", ())),
            unexplained=tuple(Unexplained.from_dict(item) for item in data.get("unexplained", ())),
            planned=data.get("planned", False),
            push=PushRecord.from_dict(data["push"]) if "push" in data else None,
        )


def iso_utc(timestamp: float, timespec: str = "milliseconds") -> str:
    """UTC ISO 8601 ending in ``Z`` (the spec's ``execution_timestamp`` uses ``timespec="seconds"``)."""
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_iso_utc(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_signature(run_id: str) -> str:
    """How a run signs what it writes into the repository: its merge commits' ``Aligned-By`` trailer and the
    reflog entries of the refs it moves, backs up and puts back."""
    return f"branch-alignment run {run_id}"
