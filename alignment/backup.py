"""Backups (079.6): ``<prefix>-<branch>-pre-align`` at the branch's old tip, created before anything else.

A backup is created only where none exists (a create-only ref update, so two runs cannot both create it).
An existing backup at the same commit is reused; one at another commit is never overwritten: the next
free suffixed name (``-2``, ``-3``, ...) is used instead and the result says so. Cleanup deletes a backup
only if this run created it and it still points where it was made (compare-and-swap delete).
"""

from __future__ import annotations

from dataclasses import dataclass

from alignment.errors import GitError, StepFailed
from alignment.git import Git, RefUpdate, branch_ref
from alignment.model import ErrorCode, Status

MAX_SUFFIX = 20


@dataclass(frozen=True)
class Backup:
    """A backup branch, the commit it holds, and whether this run created it."""

    name: str
    commit: str
    created: bool

    @property
    def note(self) -> str | None:
        if not self.created:
            return f"reused existing backup '{self.name}' (already at the old tip)"
        if not self.name.endswith("-pre-align"):
            return f"'{self.name.rsplit('-', 1)[0]}' exists at another commit and was kept; backup is '{self.name}'"
        return None


def backup_name(prefix: str, branch: str, attempt: int = 1) -> str:
    base = f"{prefix}-{branch}-pre-align"
    return base if attempt == 1 else f"{base}-{attempt}"


def create_backup(git: Git, prefix: str, branch: str, commit: str) -> Backup:
    """Make (or reuse) the backup of ``branch`` at ``commit``; never overwrite an existing backup."""
    last_error = ""
    for attempt in range(1, MAX_SUFFIX + 1):
        name = backup_name(prefix, branch, attempt)
        existing = git.resolve_branch(name)
        if existing == commit:
            return Backup(name, commit, created=False)
        if existing is not None:
            continue
        try:
            git.update_refs([RefUpdate(branch_ref(name), commit, None)])
        except GitError as exc:
            last_error = exc.stderr.splitlines()[-1] if exc.stderr else str(exc)
            continue
        return Backup(name, commit, created=True)
    raise StepFailed(
        Status.FAILED_INTEGRATION,
        [ErrorCode.BACKUP_FAILED],
        f"could not create a backup of '{branch}' at {commit[:12]}: {last_error or 'every backup name is taken'}",
    )


def remove_backup(git: Git, backup: Backup) -> bool:
    """Delete ``backup`` if this run created it and it still holds its commit; True when deleted."""
    if not backup.created:
        return False
    try:
        git.update_refs([RefUpdate(branch_ref(backup.name), None, backup.commit)])
    except GitError:
        return False
    return True
