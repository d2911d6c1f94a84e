"""Worker clones (``--worker-clones DIR``): each pytest-xdist worker aligns in a bare repository of its own.

Remote workers (``--tx ssh=host//python=python3``, ``--tx socket=host:port``) do not share the controller's
disk, so they cannot read its repository. Each worker keeps a bare repository ``DIR/<worker>.git`` on its
own machine whose remote (the run's ``--remote`` name) fetches from the controller's remote URL and pushes
where ``git push`` pushes in the controller's repository (its ``pushurl``, ``pushInsteadOf``): made on
first use, with the object format (sha1, sha256) of the controller's repository, and refreshed by fetch on
later runs (a cache: objects fetched once are not fetched again). A lock file beside it keeps two runs on
one machine out of one clone; the second takes ``<worker>-2.git``. A clone of another object format than
the run's repository (git cannot fetch across formats) is removed and made anew by the run that locks it,
if it carries the mark of a clone the tool made (``Git.mark_worker_clone``); an unmarked repository there
is never touched, and the worker takes the next name.

Its merges are authored and committed as in the controller's repository: the controller resolves git's
identity there and each run writes it into the clone's config (``author.*``, ``committer.*``), so a worker
machine needs no identity of its own.

In the clone the worker fetches the listed branches and targets into the run's namespace and, by commit id,
any target the controller pinned at another commit; it aligns there and pushes its own branches at the end
of its session (``remote.push_branches``: backups first, then each branch with a lease on its fetched tip).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from alignment.errors import GitError, RepositoryError, counted
from alignment.git import Git, RepoLocation
from alignment.remote import NAMESPACE, fetch_listed, tracking_root

MAX_CLONES_PER_WORKER = 8  # runs on one machine at once that each want the clone of one worker id


@dataclass(frozen=True)
class WorkerClones:
    """Where workers keep their clones (a path on each worker's machine), the URL they fetch from, the object
    format (``sha1``, ``sha256``) their clones need for it, the URLs they push to, and the name and email
    their merges are authored and committed with (the controller's repository's)."""

    directory: str
    url: str
    object_format: str
    push_urls: tuple[str, ...]
    author: tuple[str, str]
    committer: tuple[str, str]


def clones_for(location: RepoLocation, remote: str, directory: str) -> WorkerClones:
    """The controller's side: workers' clones under ``directory``, fetching from the URL of ``remote`` and
    pushing where ``git push REMOTE`` does in the repository (its ``pushurl``s, else the URL), as workers
    elsewhere can use them (``Git.remote_url``: a relative local path made absolute), committing as git does
    in the repository (``set_up_run`` checked that it can)."""
    git = Git(location)
    try:
        return WorkerClones(
            directory,
            git.remote_url(remote),
            git.object_format(),
            git.remote_push_urls(remote),
            git.person("GIT_AUTHOR"),
            git.person("GIT_COMMITTER"),
        )
    finally:
        git.close()


class Clone:
    """A worker's clone, locked for this process until ``close``."""

    def __init__(self, location: RepoLocation, created: bool, lock: int) -> None:
        self.location = location
        self.created = created
        self._lock: int | None = lock

    def close(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> Clone:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def open_clone(clones: WorkerClones, worker: str, remote: str) -> Clone:
    """Lock and return ``worker``'s clone under ``clones.directory``, made on first use; its ``remote``
    points at ``clones.url``. A clone another run holds is skipped for the next free ``<worker>-N``; one of
    another object format is made anew (``_prepare``)."""
    directory = Path(clones.directory).expanduser().resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RepositoryError(f"--worker-clones {directory}: cannot create it ({error.strerror})") from None
    for attempt in range(1, MAX_CLONES_PER_WORKER + 1):
        name = worker if attempt == 1 else f"{worker}-{attempt}"
        try:
            lock = _try_lock(directory / f"{name}.lock")
        except OSError as error:
            raise RepositoryError(f"--worker-clones {directory}: cannot lock {name} ({error.strerror})") from None
        if lock is None:
            continue
        location = RepoLocation(directory / f"{name}.git", directory / f"{name}.git", None)
        try:
            created = _prepare(location, clones, remote)
        except BaseException:
            os.close(lock)
            raise
        if created is None:
            os.close(lock)
            continue
        return Clone(location, created, lock)
    raise RepositoryError(
        f"--worker-clones {directory}: every clone of worker {worker} "
        f"({counted(MAX_CLONES_PER_WORKER, 'clone', 'clones')}) is in use by another run, or is a repository of "
        f"another object format than {clones.object_format} that the tool did not make"
    )


def _prepare(location: RepoLocation, clones: WorkerClones, remote: str) -> bool | None:
    """Make the clone at ``location`` unless it exists, point its ``remote`` at ``clones``' URLs and give it
    the controller's identity: whether it was made now. One of another object format than ``clones`` needs
    (git cannot fetch across formats) is removed and made anew, as a cache of a format no run may use again,
    if the tool made it; None, and nothing touched, for a repository there of another format without that
    mark. An identity git still refuses there (the worker's ``GIT_AUTHOR_NAME``, say) is a ``RepositoryError``."""
    created = not location.git_dir.exists() or _remove_if_of_another_format(location, clones.object_format)
    if created is None:
        return None
    if created:
        made = Git.init_bare(location.git_dir, object_format=clones.object_format)
        try:
            made.mark_worker_clone()
        finally:
            made.close()
    git = Git(location)
    try:
        git.set_remote_urls(remote, clones.url, clones.push_urls)
        git.set_identity(*clones.author, scope="author")
        git.set_identity(*clones.committer, scope="committer")
        problem = git.identity_problem()
    finally:
        git.close()
    if problem is not None:
        raise RepositoryError(f"--worker-clones {location.git_dir}: git cannot author merge commits there ({problem})")
    return created


def _remove_if_of_another_format(location: RepoLocation, object_format: str) -> bool | None:
    """Remove the clone at ``location`` (locked by this process) if its object format is not ``object_format``;
    whether it did, or None for one of another format without the tool's mark (a name proves nothing)."""
    git = Git(location)
    try:
        if git.object_format() == object_format:
            return False
        if not git.is_worker_clone():
            return None
    finally:
        git.close()
    try:
        shutil.rmtree(location.git_dir)
    except OSError as error:
        raise RepositoryError(
            f"--worker-clones {location.git_dir.parent}: cannot remove {location.git_dir.name}, a clone of "
            f"another object format than {object_format} ({error.strerror})"
        ) from None
    return True


def _try_lock(path: Path) -> int | None:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def pinned_ref(target: str) -> str:
    """Where a clone keeps a target commit fetched by id (the remote's target moved since the controller)."""
    return f"{NAMESPACE}pinned/{target}"


def fetch_run_refs(
    clone: Clone, remote: str, names: Iterable[str], target_commits: Mapping[str, str], timeout: float
) -> None:
    """Fetch a run's branches and targets (``names``) into ``clone``. A target whose remote tip moved since the
    controller pinned it at ``target_commits`` is fetched by id."""
    git = Git(clone.location, timeout=timeout)
    try:
        fetch_listed(git, remote, names)
        root = tracking_root(remote)
        moved = {
            commit: pinned_ref(target)
            for target, commit in target_commits.items()
            if git.resolve_ref(root + target) != commit
        }
        if moved:
            try:
                git.fetch(remote, moved)
            except GitError as error:
                raise RepositoryError(f"--remote {remote}: cannot fetch the pinned targets: {error.cause}") from None
    finally:
        git.close()
