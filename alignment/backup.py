"""Backups: ``<prefix>-<branch>-pre-align`` at the branch's old tip, created before anything else.

A backup is created only where none exists (a create-only ref update, so two runs cannot both create it).
An existing backup at the same commit is reused; one at another commit is never overwritten: the next
free suffixed name (``-2``, ``-3``, ...) is used instead and the result says so. A name that is itself
listed for alignment is never a backup (the run may move that branch): it is passed over the same way, and
so is a name that is a folder of another listed branch's backup name (``backup-a-pre-align`` for
``a-pre-align/b``'s ``backup-a-pre-align/b-pre-align``): git cannot hold both, so whichever came first would
fail the other; the folder's branch takes ``-2`` instead, whatever the order. A plan walks the same names
(``dry_run``) and creates none: its result names the backup the run would make or reuse, with the same note.
A branch named like a folder of the backup name (``backup-f`` for ``backup-f/x-pre-align``) fails the
branch at once, naming it: no suffix can get past it (a plan predicts this failure). A name too long for a
ref file is shortened (``names.fit_ref_name``), the same way every time, so a later run finds it. Cleanup
deletes a backup only if this run created it and it still points where it was made (compare-and-swap
delete).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from alignment.document import record_backup_removed
from alignment.errors import GitError, StepFailed
from alignment.git import Git, RefUpdate, branch_ref
from alignment.model import ErrorCode, Status
from alignment.names import enclosing_names, fit_ref_name

MAX_SUFFIX = 20


@dataclass(frozen=True)
class Backup:
    """A backup branch, the commit it holds, whether this run created it, and what the result should say."""

    name: str
    commit: str
    created: bool
    note: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A backup name in the order they are tried, and why it is passed over without a look (None: tried)."""

    name: str
    passed_over: str | None = None


def backup_name(prefix: str, branch: str, attempt: int = 1) -> str:
    return fit_ref_name(f"{prefix}-{branch}", "-pre-align" if attempt == 1 else f"-pre-align-{attempt}")


def candidate_names(
    prefix: str, branch: str, listed: Collection[str], folders: Mapping[str, str]
) -> Iterator[Candidate]:
    """The ``MAX_SUFFIX`` backup names of ``branch``, in order: a name in ``listed`` (the branches of the run)
    or in ``folders`` (``backup_folders`` of them) is passed over, saying why. The one rule by which
    ``create_backup`` makes a backup and a backup is looked for where it was made."""
    for attempt in range(1, MAX_SUFFIX + 1):
        name = backup_name(prefix, branch, attempt)
        if name in listed:
            yield Candidate(name, f"'{name}' is itself listed for alignment and was not used")
        elif name in folders:
            why = f"'{name}' is a folder of '{folders[name]}', another listed branch's backup name, and was not used"
            yield Candidate(name, why)
        else:
            yield Candidate(name)


def create_backup(
    git: Git,
    prefix: str,
    branch: str,
    commit: str,
    listed: Collection[str] = (),
    existing: Collection[str] | None = None,
    folders: Mapping[str, str] | None = None,
    *,
    dry_run: bool = False,
) -> Backup:
    """Make (or reuse) the backup of ``branch`` at ``commit``; never overwrite an existing backup, never use
    a name in ``listed`` (the branches of the run) or a folder of one's backup name (``folders``: the run's
    ``backup_folders``, made from ``listed`` when not given).

    ``existing``: the branches named ``<prefix>...`` when the run started (None: not known). A name not among
    them is created at once, without reading it first: the create-only update still refuses it if it was
    made since, and then the name is read and decided as any other.

    ``dry_run`` (a plan): nothing is created; the backup a run would make or reuse now, with its note, or its
    failure. A free name counts as created unless a branch blocks it (``refuse_if_blocked``).
    """

    def create(name: str) -> str | None:
        """Create branch ``name`` at ``commit`` (``_create``); in a dry run, only fail as a blocked name would."""
        if not dry_run:
            return _create(git, name, commit)
        refuse_if_blocked(git, branch, commit, name, prefix, existing)
        return None

    last_error = ""
    passed_over: list[str] = []
    folders = backup_folders(prefix, listed) if folders is None else folders
    for candidate in candidate_names(prefix, branch, listed, folders):
        name = candidate.name
        if candidate.passed_over is not None:
            passed_over.append(candidate.passed_over)
            continue
        absent_at_start = existing is not None and name.startswith(prefix) and name not in existing
        if absent_at_start and create(name) is None:
            return _created(name, commit, passed_over)
        found = git.resolve_branch(name)
        if found == commit:
            return Backup(name, commit, False, backup_note(name, passed_over, reused=True))
        if found is not None:
            passed_over.append(taken_note(name))
            continue
        error = create(name)
        if error is None:
            return _created(name, commit, passed_over)
        refuse_if_blocked(git, branch, commit, name)
        last_error = error
    raise StepFailed(
        Status.FAILED_INTEGRATION,
        [ErrorCode.BACKUP_FAILED],
        f"could not create a backup of '{branch}' at {commit[:12]}: {last_error or 'every backup name is taken'}",
    )


def backup_folders(prefix: str, listed: Iterable[str]) -> dict[str, str]:
    """The folders of the backup names of ``listed``, each with the backup name it holds: made once per run
    (or push), not per branch, which over thousands of branches would be quadratic."""
    names = (backup_name(prefix, branch) for branch in listed)
    return {folder: name for name in names for folder in enclosing_names(name)}


def refuse_if_blocked(
    git: Git, branch: str, commit: str, name: str, prefix: str | None = None, existing: Collection[str] | None = None
) -> None:
    """Fail at once when a branch is named like a folder of ``name`` (``backup-f`` for ``backup-f/x-pre-align``):
    git cannot have both, and no suffix changes the folder, so the other names are not tried. A plan, which
    creates no backup, asks this of the first name: the failure ``create_backup`` would meet. ``existing``:
    the branches named ``<prefix>...`` when the run started; a folder name starting with ``prefix`` is looked
    up there instead of read (a round trip to git each)."""
    for blocker in enclosing_names(name):
        if existing is not None and prefix is not None and blocker.startswith(prefix):
            found = blocker in existing
        else:
            found = git.resolve_branch(blocker) is not None
        if found:
            raise StepFailed(
                Status.FAILED_INTEGRATION,
                [ErrorCode.BACKUP_FAILED],
                f"could not create a backup of '{branch}' at {commit[:12]}: the branch '{blocker}' blocks "
                f"'{name}' (git cannot have a branch inside another branch's name); rename '{blocker}' or set "
                "orchestration.backup_branch_prefix",
            )


def _create(git: Git, name: str, commit: str) -> str | None:
    """Create branch ``name`` at ``commit`` only if it does not exist; None when done, else git's reason."""
    try:
        git.update_refs([RefUpdate(branch_ref(name), commit, None)])
    except GitError as exc:
        return exc.reason
    return None


def _created(name: str, commit: str, passed_over: list[str]) -> Backup:
    return Backup(name, commit, True, backup_note(name, passed_over, reused=False))


def taken_note(name: str) -> str:
    """Why the backup name ``name`` was passed over: a backup at another commit holds it."""
    return f"'{name}' exists at another commit and was kept"


def backup_note(name: str, passed_over: Sequence[str], *, reused: bool) -> str | None:
    """What the result says of the backup ``name``, local or on a remote: the first name passed over and why
    (and how many more), then that ``name`` was reused or is the backup; None for a new backup of the first
    name."""
    if reused:
        outcome = f"reused existing backup '{name}' (already at the old tip)"
    elif passed_over:
        outcome = f"backup is '{name}'"
    else:
        return None
    if not passed_over:
        return outcome
    more = f" (and {len(passed_over) - 1} more)" if len(passed_over) > 1 else ""
    return f"{passed_over[0]}{more}; {outcome}"


def remove_backup(git: Git, backup: Backup) -> bool:
    """Delete ``backup`` if this run created it and it still holds its commit; True when deleted."""
    if not backup.created:
        return False
    try:
        git.update_refs([RefUpdate(branch_ref(backup.name), None, backup.commit)])
    except GitError:
        return False
    return True


def clean_up(git: Git, backup: Backup, document: str | None) -> list[str]:
    """auto_cleanup_backups, once the branch is safely aligned: remove ``backup`` (``remove_backup``) and say so
    in the change document at ``document``; the notes the result gets for it."""
    if not remove_backup(git, backup):
        return []
    notes = [f"backup '{backup.name}' removed (auto_cleanup_backups)"]
    try:
        if document is not None:
            record_backup_removed(Path(document))
    except OSError as error:
        notes.append(f"change document not updated after removing the backup: {error}")
    return notes
