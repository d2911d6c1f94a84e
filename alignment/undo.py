"""Undo a run: put back every branch it moved, from the run's move journal, by compare-and-swap.

The journal (``<reports>/runs/<run id>/moves/``) is written before each move, so undo works for a run that
finished, failed, or died half-way. A branch that moved again since the run, or that would move but is
checked out in a worktree now, is refused and left alone; backups are never deleted. Branches a ``--remote``
run pushed are put back on that remote, with a lease on the commit the run pushed (``remote.restore_pushed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alignment.errors import FileProblem, RepositoryError, RepositoryRefused, UsageProblem
from alignment.git import Checkout, Git, RepoLocation
from alignment.journal import Move, MoveJournal, Outcome, PutBack, Restoration, restore
from alignment.logs import AuditTrail
from alignment.model import run_signature
from alignment.remote import restore_pushed
from alignment.runs import RunFolder


@dataclass(frozen=True)
class UndoReport:
    run_id: str
    repository: str
    dry_run: bool
    restorations: tuple[Restoration, ...]
    note: str | None = None  # why undo works elsewhere than where the run worked

    @property
    def refused(self) -> tuple[Restoration, ...]:
        """Every branch not put back: refused (moved since, checked out) or failed."""
        return tuple(item for item in self.restorations if item.outcome not in (Outcome.RESTORED, Outcome.NOT_MOVED))


def undo_run(
    reports_dir: Path, run_id: str, *, repo_path: str | Path | None = None, dry_run: bool = False
) -> UndoReport:
    """Restore every branch run ``run_id`` moved (or say what would happen, with ``dry_run``)."""
    if run_id in ("", ".", "..") or Path(run_id).name != run_id:  # a path would reach outside <reports>/runs/
        raise UsageProblem(
            f"{run_id!r} is no run id: a run id is the name of a folder in {(reports_dir / 'runs').resolve()}, as "
            "`alignment runs --reports-dir DIR` lists it (e.g. 20261125T101500Z-3fa9c1)"
        )
    folder = RunFolder(reports_dir, run_id)
    record_path = folder.record_path
    if not record_path.exists():
        raise UsageProblem(
            f"{folder.path.resolve()}: no such run (no {record_path.name}); `alignment runs --reports-dir DIR` lists "
            "the runs of a reports directory: pass the --reports-dir your pytest run wrote to"
        )
    if repo_path is not None:
        repository, location, note = str(repo_path), RepoLocation.discover(repo_path), None
    else:
        repository, location, note = _where_the_run_worked(folder)
    git = Git(location, reflog_message=f"{run_signature(run_id)}: undone")
    journal = MoveJournal(folder.moves_dir)
    moves = journal.moves()
    try:
        remotes = sorted({move.remote for move in moves if move.remote is not None})
        if remotes and git.is_shallow():  # git cannot push the old tips from it: refused before anything changes
            raise RepositoryError(
                f"{repository}: a shallow clone; putting back what the run pushed to "
                f"{', '.join(map(repr, remotes))} needs the whole history (run `git fetch --unshallow` first, or "
                "pass --repo a complete clone)"
            )
        busy = {checkout.branch: checkout for checkout in git.checkouts()}
        restorations = [_restore_local(git, move, busy, journal, dry_run) for move in moves if move.remote is None]
        for remote in remotes:
            pushed = restore_pushed(git, remote, [move for move in moves if move.remote == remote], dry_run=dry_run)
            if not dry_run:
                for item in pushed:
                    journal.put_back(item, PutBack.UNDO)
            restorations.extend(pushed)
    finally:
        git.close()
    kept = tuple(item for item in restorations if _still_the_runs(item))
    report = UndoReport(run_id, repository, dry_run, kept, note)
    if not dry_run:
        AuditTrail(folder.audit_path).record(
            "undo", run_id=run_id, outcomes={item.move.branch: item.outcome.value for item in restorations}
        )
    return report


def _still_the_runs(restoration: Restoration) -> bool:
    """Whether ``restoration`` is of a move the run made and did not put back itself: one it put back (an
    interrupted branch's teardown, the controller after a crash or Ctrl-C) is none of its moves, as ``alignment
    runs`` counts them, unless its branch is at that move's new tip after all (then it is restored)."""
    return restoration.move.put_back is not PutBack.RUN or restoration.outcome is Outcome.RESTORED


def _where_the_run_worked(folder: RunFolder) -> tuple[str, RepoLocation, str | None]:
    """Where undo works, the repository found there, and why that is not where the run worked, if it is not.

    Where the run's git processes ran (``RepoLocation.run_dir``, which its record keeps), as the run saw the
    repository there: a linked worktree's remote URLs are relative to it, it may have remotes of its own
    (``config.worktree``) and a ``safe.directory`` entry of its own. Gone (the worktree removed), no repository
    or another repository's now: the common git dir the record names too. An unreadable record, or a repository
    git refuses there, is one line that says how to go on."""
    try:
        record = folder.record()
    except FileProblem as error:
        raise UsageProblem(f"{error}; pass --repo PATH, the repository the run aligned, to undo it anyway") from None
    repository, ran_in = str(record["repository"]), record.get("run_dir")  # no run_dir: an older run's record
    note = None
    try:
        if isinstance(ran_in, str) and Path(ran_in).is_dir():
            try:
                location = RepoLocation.discover(ran_in)
                if location.common_dir == Path(repository):
                    return ran_in, location, None
                now = "another repository's now"
            except RepositoryRefused:  # a repository there that git refuses: said, not passed over
                raise
            except RepositoryError:  # no repository there now: the common dir may still do
                now = "no repository undo can use now"
            note = f"{ran_in}, where run {folder.run_id} worked, is {now}: undoing in {repository}"
        elif isinstance(ran_in, str):
            note = f"{ran_in}, where run {folder.run_id} worked, is gone: undoing in {repository}"
        return repository, RepoLocation.discover(repository), note
    except RepositoryError as error:
        raise RepositoryError(
            f"{error}; or pass --repo PATH, a worktree of the repository run {folder.run_id} aligned"
        ) from None


def _restore_local(
    git: Git, move: Move, busy: Mapping[str | None, Checkout], journal: MoveJournal, dry_run: bool
) -> Restoration:
    """Restore one branch of this repository (journaled as put back by undo); one checked out in a worktree is
    refused only when it would move: one already at its old tip is unchanged, wherever it is checked out."""
    checkout = busy.get(move.branch)
    if checkout is None or git.resolve_branch(move.branch) == move.old_tip:
        return restore(git, move, journal=journal, by=PutBack.UNDO, dry_run=dry_run)
    message = f"'{move.branch}' is checked out in the worktree at {checkout.path}; not touched"
    return Restoration(move, Outcome.CHECKED_OUT, message)
