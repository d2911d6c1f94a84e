"""The one door to git: every git process of the library starts here.

Design, measured on git 2.39:

* Merges happen in memory (``merge-tree --write-tree`` + ``commit-tree``); refs move by compare-and-swap
  transactions (``update-ref --stdin``). No checkout, no index, no HEAD: the user's worktree is never touched.
* Reads that happen per branch go to one long-lived ``cat-file --batch`` (objects, and trees walked in
  Python for what changed), ref moves to a long-lived ``update-ref --stdin``, and the merge commit is written
  here as git writes a loose object (``_ObjectStore``): per branch, the only new process is ``merge-tree``
  (and a ``diff-tree`` for line counts when the merge combined files).
* Every call passes ``-c core.hooksPath=/dev/null`` (plumbing must not run the user's hooks, e.g.
  ``reference-transaction`` on update-ref, ``post-checkout`` on worktree add) and disables auto-gc.
* Every process runs where git runs for the repository (``RepoLocation.run_dir``), never in this process's
  directory: with ``--git-dir``, git takes the directory it runs in as the worktree, whose ``.gitattributes``
  decide merges.
* Names from input files are passed as arguments after ``--end-of-options`` or as full ``refs/heads/`` names,
  never through a shell and never where git could read them as options.
* GitPython is used for repository discovery only (``RepoLocation.discover``), in the controller. Measured
  here (GitPython 3.2, Python 3.11): importing it costs 64 ms and 11 MB of RSS, and reading objects through
  it keeps two persistent ``cat-file`` processes (``--batch`` and ``--batch-check``) per ``Repo``. xdist
  workers therefore never import it; the hot path uses one ``cat-file --batch`` of our own per process,
  which a timeout can kill with its process group.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import selectors
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from alignment.errors import (
    AlignmentError,
    CheckoutFailed,
    FetchRejected,
    GitError,
    GitTimeout,
    MissingRemoteRef,
    ObjectWriteError,
    RefUpdateRejected,
    RepositoryError,
    RepositoryGone,
    RepositoryRefused,
    UnrelatedHistories,
)
from alignment.model import CommitInfo, FileChange
from alignment.processes import ProcessTimeout, kill_group, run_process
from alignment.resources import OpsLimiter, Unlimited
from alignment.scratch import create_scratch, memory_dir, release

T = TypeVar("T")

_SAFE_CONFIG = (
    "core.hooksPath=/dev/null",  # plumbing must not run the user's hooks (reference-transaction, post-checkout)
    "gc.auto=0",
    "maintenance.auto=false",
    "rebase.updateRefs=false",  # a rebase must not move other branches
    "rebase.autoStash=false",
    "rebase.autoSquash=false",
    "commit.gpgSign=false",
    "rerere.enabled=false",  # no recorded resolutions applied, none written to the user's rr-cache
    "core.fsmonitor=false",
)
# git's warning for a fetched ref it leaves as it was (``reject`` before git 2.5); its exit code stays 0.
_FETCH_REJECTED = re.compile(r"^warning: rejected? (\S+) because (.+)$", re.MULTILINE)
_SAFETY_OPTIONS = tuple(option for setting in _SAFE_CONFIG for option in ("-c", setting))
# Long-lived helpers read many objects; git's delta base cache (96 MB by default) would grow in each of them.
# 256 KB: at 1 MB each reading helper of a 50-branch run held ~0.9 MB more; reading 4,010 objects of
# pytest's history (300 commits' new objects, every .py at the tip) took 3% more CPU (no cache: 9% more).
# ``update-ref --stdin`` otherwise looks for a ref named like every object id it is given (only to warn when
# one exists): 12 file checks per id, a third of its system calls. We always mean the object.
_HELPER_OPTIONS = ("-c", "core.deltaBaseCacheLimit=256k", "-c", "core.warnAmbiguousRefs=false")
# A batch of merges in one process fills that cache too: 32 merges of pytest's history peaked at 97 MB RSS
# with the default, 57 MB with this, in the same time (a single merge there: 16-35 MB).
_BATCH_OPTIONS = ("-c", "core.deltaBaseCacheLimit=16m")
# Objects written to a throwaway directory are deleted unread: compressing them (git's default for loose
# objects is zlib's fastest level) is wasted. Measured: 90 probe merges of pytest's history, 1.05 -> 0.85 s
# (user 0.96 -> 0.74 s); they wrote 52 MB instead of 12 MB, to memory where there is room.
_THROWAWAY_OPTIONS = (*_BATCH_OPTIONS, "-c", "core.looseCompression=0")
# ``update-ref --stdin`` keeps every ref it has created in its cache of loose refs, for its whole life: ~1 KB
# a backup. Measured (a backup and a move for each of 1,500 branches, one process): 3.8 -> 5.3 MB USS; ended
# after every 250 transactions, at most 4.2 MB, in the same time (a fresh process costs ~2 ms, and reads again
# the loose refs a transaction needs).
REF_HELPER_LIFETIME = 250
# Variables that point git at another repository or at other parts of one: git sets most of them for its hooks
# (a pre-receive hook's GIT_OBJECT_DIRECTORY / GIT_QUARANTINE_PATH), a user's shell may hold them. With
# GIT_OBJECT_DIRECTORY, merge commits were written elsewhere while the branches moved here, at commits this
# repository lacks. ``git rev-parse --local-env-vars`` lists them, less the configuration ones (GIT_CONFIG,
# GIT_CONFIG_PARAMETERS / COUNT: a CI job's ``http.extraHeader`` for the remote) and the replace-ref ones,
# which mean what they say to ``git merge`` too.
_LOCATION_VARIABLES = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_IMPLICIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX",
    "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_GRAFT_FILE", "GIT_SHALLOW_FILE",
    "GIT_INTERNAL_SUPER_PREFIX", "GIT_QUARANTINE_PATH",
)  # fmt: skip
_PATHSPEC_MODES = ("GIT_LITERAL_PATHSPECS", "GIT_GLOB_PATHSPECS", "GIT_NOGLOB_PATHSPECS", "GIT_ICASE_PATHSPECS")
_HEADS = "refs/heads/"
_REMOTES = "refs/remotes/"
# Where git's name guessing looks for ``refs/heads/<name>`` when that ref is absent (git's ref_rev_parse_rules).
_GUESSED_PREFIXES = ("refs/", "refs/tags/", "refs/heads/", "refs/remotes/")
_DIFF_TREE = ("diff-tree", "-r", "-z", "--raw", "--numstat", "--no-commit-id", "--abbrev=64")  # + renames or not
_COMMIT_FORMAT = "%H%n%an%n%s"  # read by _commit_info
_OWN_FORMAT = "%H%x00%P%x00%an <%ae> %at%x00%s%x00"  # read by _commits_of: no field holds a NUL
_TREE_MODE = "40000"
_GITLINK_MODE = "160000"
WORKER_CLONE_MARK = "alignment.workerClone"  # set in a worker clone the tool made (``Git.mark_worker_clone``)
PATHSPEC_BYTES = 64 * 1024  # paths (the whole diff filtered beyond) or refs (more calls beyond) a call's arguments hold
# Branches named to for-each-ref one by one at most (``_branch_names``). git matches every ref against every
# pattern: ``--contains`` over 3,000 refs took 0.39 s with 3,000 patterns, 0.04 s with 256, 0.05 s listing all
# (git 2.39, commit-graph present), so beyond about this many, listing all costs less, whatever the ref count.
NAMED_REFS_AT_MOST = 256
PREFETCH = 64  # trees read in one round trip: 2.7 KB of request, far below a pipe's 64 KB, so it never blocks


def without_repository_variables(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without variables that point git at a repository."""
    source = base if base is not None else os.environ
    return {key: value for key, value in source.items() if key not in _LOCATION_VARIABLES}


def git_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of our git processes: no inherited repository location or pathspec mode (our
    ``:(literal)`` pathspecs must mean what they say), no prompts, C locale."""
    env = {key: value for key, value in without_repository_variables(base).items() if key not in _PATHSPEC_MODES}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", "GIT_EDITOR": "true"})
    return env


@dataclass(frozen=True)
class RepoLocation:
    """Where a repository lives: its git dir, the common dir of all its worktrees, the main worktree.

    ``main_work_tree`` is None when the main repository is bare (it may still have linked worktrees).
    """

    git_dir: Path
    common_dir: Path
    main_work_tree: Path | None

    @property
    def bare(self) -> bool:
        return self.main_work_tree is None

    @functools.cached_property  # read once: every git process of the repository runs there
    def run_dir(self) -> Path:
        """The directory git runs in for this repository, as ``git -C REPO ...`` would: the top of its
        worktree (a linked worktree's own, which its ``gitdir`` file names), or the git dir of a bare
        repository. git takes the directory it runs in as the worktree (``--git-dir`` alone says nothing of
        it): there it reads ``.gitattributes`` (merge drivers) and finds submodules' repositories, and a
        remote URL that is a relative path means what it means to git."""
        if self.git_dir != self.common_dir:
            top = Path(_read_text(self.git_dir / "gitdir")).parent  # ``gitdir``: the linked worktree's ``.git``
            if top.is_absolute() and top.is_dir():
                return top
        return self.main_work_tree or self.git_dir

    @classmethod
    def discover(cls, path: str | Path) -> RepoLocation:
        """The repository at ``path`` (its top level, its ``.git`` or a bare repository)."""
        import git as gitpython  # noqa: PLC0415 - GitPython runs `git version` on import: controller only

        candidate = Path(path).expanduser()
        if not candidate.exists():
            raise RepositoryError(f"{candidate}: no such directory")
        try:
            repo = gitpython.Repo(candidate)
        except gitpython.InvalidGitRepositoryError:
            raise RepositoryError(_not_a_repository(candidate)) from None
        except gitpython.NoSuchPathError:
            raise RepositoryError(f"{candidate}: no such directory") from None
        try:
            git_dir = Path(repo.git_dir).resolve()
            common_dir = Path(repo.common_dir).resolve()
            # GitPython gives a relative ``core.worktree`` as written; git reads it relative to the git dir
            top = None if repo.bare else (Path(repo.git_dir) / str(repo.working_tree_dir)).resolve()
            main_bare = repo.config_reader().get_value("core", "bare", default=False) is True
        finally:
            repo.close()
        main = None if main_bare else (top if git_dir == common_dir else common_dir.parent)
        location = cls(git_dir, common_dir, main)
        _check_ownership(candidate, location)
        return location


def _not_a_repository(path: Path) -> str:
    """Why ``path`` is no repository to work on: it is inside one, named with its top to give instead (taking
    that top silently could align a repository around a folder that was not meant), or in none."""
    import git as gitpython  # noqa: PLC0415 - as in ``RepoLocation.discover``

    try:
        outer = gitpython.Repo(path, search_parent_directories=True)
    except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError):
        return f"{path}: not a git repository (give its top-level directory)"
    try:
        top = outer.git_dir if outer.bare else outer.working_tree_dir
    finally:
        outer.close()
    return f"{path} is inside the repository at {top}: give its top-level directory"


def _check_ownership(given: Path, location: RepoLocation) -> None:
    """Refuse a repository git itself refuses: one owned by another user that no ``safe.directory`` setting
    trusts (its configuration could run commands as us, e.g. ``remote.<name>.uploadpack``). Our other git
    processes name the repository (``--git-dir``), which skips git's check; this one lets git find it where
    it runs for the repository, and so applies the check, with git's own rules and settings.
    ``safe.bareRepository=all``: the user named this repository, as ``--git-dir`` does; without it, a
    setting of ``explicit`` would answer for a bare repository before the ownership check does. Where the
    worktree holds no ``.git`` of this repository (one ``core.worktree`` sets, the dotfiles set-up; a git dir
    of ``--separate-git-dir`` that knows no worktree), git finds it in its git dir only."""
    args = ("rev-parse", "--git-dir")
    argv = ("git", *_SAFETY_OPTIONS, "-c", "safe.bareRepository=all", *args)
    where = location.run_dir if _leads_to(location.run_dir / ".git", location.git_dir) else location.git_dir
    try:
        done = run_process(argv, cwd=where, env=git_environment(), timeout=60)
    except ProcessTimeout:
        raise GitTimeout(args, 60) from None
    if done.returncode == 0:
        return
    stderr = done.stderr.decode("utf-8", "replace")
    fix = re.search(r"git config --global --add safe\.directory .*", stderr)
    if "dubious ownership" in stderr and fix is not None:
        raise RepositoryRefused(
            f"{given}: owned by another user, git refuses it (dubious ownership); if you trust it: `{fix[0]}`"
        )
    detail = GitError(args, done.returncode, stderr).detail
    raise RepositoryRefused(f"{given}: git cannot use this repository ({detail})")


def _leads_to(dot_git: Path, git_dir: Path) -> bool:
    """Whether git finding the repository at ``dot_git`` (a ``.git`` directory, or a file naming one) finds
    ``git_dir``."""
    pointer = _read_text(dot_git)  # "" for a directory
    found = dot_git.parent / pointer.removeprefix("gitdir:").strip() if pointer.startswith("gitdir:") else dot_git
    return found.is_dir() and found.resolve() == git_dir


@dataclass(frozen=True)
class Conflict:
    """A path the merge could not resolve, with git's conflict kind (``content``, ``modify/delete``, ...)."""

    path: str
    kind: str


@dataclass(frozen=True)
class MergeTree:
    """The result of an in-memory merge: the tree written, and the conflicts if it did not merge cleanly."""

    tree: str
    conflicts: tuple[Conflict, ...]

    @property
    def clean(self) -> bool:
        return not self.conflicts


@dataclass(frozen=True)
class OwnCommit:
    """A commit of a branch's own (reachable from it, not from its target), as a rebase sees it.

    ``identity``: what a rebase keeps of it (author, author date, subject), to tell which it replayed.
    """

    oid: str
    parents: tuple[str, ...]
    identity: str


@dataclass(frozen=True)
class Rebased:
    """What a rebase made: the new HEAD and the commits it wrote on ``onto`` (newest first), or, stopped by
    a conflict, no HEAD and the conflicted paths."""

    new_tip: str | None
    replayed: tuple[OwnCommit, ...] = ()
    conflicted: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredObject:
    """An object read from the repository."""

    oid: str
    kind: str
    content: bytes


@dataclass(frozen=True)
class RefUpdate:
    """One compare-and-swap ref change. ``old=None``: the ref must not exist; ``new=None``: delete it.

    ``checked=False``: set ``ref`` to ``new`` whatever it holds (refs of the tool's own namespace only)."""

    ref: str
    new: str | None
    old: str | None
    checked: bool = True

    def command(self) -> str:
        if not self.checked:
            return f"update {self.ref} {self.new}"
        if self.old is None:
            return f"create {self.ref} {self.new}"
        if self.new is None:
            return f"delete {self.ref} {self.old}"
        return f"update {self.ref} {self.new} {self.old}"


@dataclass(frozen=True)
class PushUpdate:
    """One ref to push: ``commit`` to the remote's ``ref``, only if the remote holds ``lease`` there now
    (``--force-with-lease=ref:lease``; ``lease=None``: only if ``ref`` does not exist yet)."""

    ref: str
    commit: str
    lease: str | None

    def lease_option(self) -> str:
        return f"--force-with-lease={self.ref}:{self.lease or ''}"

    def refspec(self) -> str:
        return f"{self.commit}:{self.ref}"


@dataclass(frozen=True)
class PushedRef:
    """What the remote did with one ref of a push (a line of ``git push --porcelain``).

    ``flag``: ``*`` new, `` `` fast-forward, ``+`` forced, ``=`` already there, ``!`` rejected.
    ``summary``: git's text, e.g. ``[rejected] (stale info)`` or ``[remote rejected] (hook declined)``."""

    ref: str
    flag: str
    summary: str

    @property
    def landed(self) -> bool:
        """The remote now holds the pushed commit at ``ref`` (pushed now, or it was there already)."""
        return self.flag in ("*", " ", "+", "=")


@dataclass(frozen=True)
class Checkout:
    """A worktree of the repository and what is checked out there."""

    path: str
    branch: str | None
    state: str


def _not_started(args: Sequence[str], where: Path) -> AlignmentError:
    """Why git did not start in ``where`` (``FileNotFoundError``): that directory is gone (a removed worktree:
    ``RepositoryGone``, a ``GitError`` as any failed git call), or git is not installed."""
    if not where.is_dir():
        return RepositoryGone(args, where)
    return RepositoryError("git is not installed or not on PATH")


def branch_ref(name: str) -> str:
    return _HEADS + name


def worktree_registered(worktree: Path) -> bool:
    """Whether the linked worktree at ``worktree`` is still registered in its repository (its ``.git`` file
    points at an administrative directory that exists), whichever repository that is."""
    pointer = _read_text(worktree / ".git")
    return pointer.startswith("gitdir:") and Path(pointer.removeprefix("gitdir:").strip()).is_dir()


def driver_files(directory: Path) -> frozenset[str]:
    """The names of merge drivers' temporary files in ``directory``: git writes a driver's three sides where it
    runs (``RepoLocation.run_dir``) as ``.merge_file_XXXXXX`` (ll-merge.c) and deletes them when the driver
    returns, but not when the merge is killed first (nor on SIGTERM, in 2.39)."""
    try:
        with os.scandir(directory) as entries:
            return frozenset(entry.name for entry in entries if entry.name.startswith(".merge_file_"))
    except OSError:
        return frozenset()


def remove_driver_files(directory: Path, kept: frozenset[str]) -> None:
    """Remove the merge drivers' files in ``directory`` but ``kept``: at the end of a run that killed a merge,
    when none of its merges runs any more (``RunSetup.discard_scratch``); a merge's own files, removed while
    its driver runs, would fail it."""
    for name in driver_files(directory) - kept:
        with contextlib.suppress(OSError):
            (directory / name).unlink()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape").strip()
    except OSError:
        return ""


class Git:
    """Runs git against one repository. Thread-safe; ``close()`` stops its long-lived helper processes."""

    def __init__(
        self,
        location: RepoLocation,
        *,
        limiter: OpsLimiter | None = None,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        reflog_message: str = "",
        killed_merges: Path | None = None,
    ) -> None:
        """``reflog_message``: what the reflog says moved a ref that ``update_refs`` moves (or created), where
        the repository keeps reflogs (``core.logAllRefUpdates``: a non-bare repository's branches by default);
        empty, git writes an entry without one. ``killed_merges``: a file to create when a merge process is
        killed (``RunSetup.killed_merges``), None where the repository configures no merge driver."""
        self.location = location
        self.timeout = timeout
        self.limiter = limiter or Unlimited()
        self.env = git_environment(env)
        self._killed_merges = killed_merges
        self._base = ("git", *_SAFETY_OPTIONS, f"--git-dir={location.git_dir}")
        self._objects = _Helpers(self, ("cat-file", "--batch"))
        message = ("-m", reflog_message) if reflog_message else ()
        self._refs = _Helpers(self, ("update-ref", *message, "--stdin"), lifetime=REF_HELPER_LIFETIME)
        self._lazy_lock = threading.Lock()  # for what is set up on first use: the object store, the probes' place
        self._store: _ObjectStore | None = None
        self._probes: Path | None = None  # throwaway object directories of probe merges (``probe_merges``)
        self._identities: dict[str, str] = {}
        self._shadowed: frozenset[str] | None = None
        self._ahead: dict[tuple[str, str], MergeTree] = {}  # merges done ahead (``merge_ahead``), until used
        self._ahead_lock = threading.Lock()
        self._parsed = _ParsedTrees()

    # -- plumbing -------------------------------------------------------------------------------------------

    def _run(
        self,
        *args: str,
        stdin: bytes | None = None,
        timeout: float | None = None,
        ok: Iterable[int] = (0,),
        cwd: Path | None = None,
        known: Mapping[str, type[GitError]] | None = None,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run one git command; raise ``GitError`` unless its exit code is in ``ok`` (the subclass ``known``
        gives for a phrase of git's stderr, so callers catch types). ``options``: git's own (``-c`` ...), before
        the command and left out of its errors, which name the command; ``env``: instead of ``self.env``;
        ``cwd``: run in that worktree of ours, as its git finds it (no ``--git-dir``); otherwise in
        ``RepoLocation.run_dir``, wherever this process runs. Private: other modules call (or add) a method
        here that names what they want of git."""
        limit = timeout if timeout is not None else self.timeout
        argv = ("git", *_SAFETY_OPTIONS, *options, *args) if cwd is not None else (*self._base, *options, *args)
        where = cwd or self.location.run_dir
        with self.limiter.slot():
            try:
                done = run_process(argv, cwd=where, stdin=stdin, timeout=limit, env=env or self.env)
            except ProcessTimeout:
                raise GitTimeout(args, limit) from None
            except FileNotFoundError:
                raise _not_started(args, where) from None
        if done.returncode not in tuple(ok):
            stderr = done.stderr.decode("utf-8", "replace")
            kind = next((kind for phrase, kind in (known or {}).items() if phrase in stderr), GitError)
            raise kind(args, done.returncode, stderr)
        return subprocess.CompletedProcess(argv, done.returncode, done.stdout, done.stderr)

    def close(self) -> None:
        for helper in (self._objects, self._refs):
            helper.close()
        if self._probes is not None:
            release(self._probes)
            shutil.rmtree(self._probes, ignore_errors=True)
            self._probes = None

    # -- refs -----------------------------------------------------------------------------------------------

    def branch_tips(self, root: str = _HEADS) -> dict[str, str]:
        """Every branch under ``root`` (local branches by default; or fetched ones) that points at a commit,
        and that commit."""
        return {name: oid for name, (kind, oid) in self.branch_objects(root).items() if kind == "commit"}

    def branch_objects(self, root: str = _HEADS) -> dict[str, tuple[str, str]]:
        """Every branch under ``root`` with the kind and id of the object it points at: a commit, unless the
        ref was written by hand (git itself refuses to point a branch at a tag or a tree)."""
        out = self._run("for-each-ref", "--format=%(objecttype) %(objectname) %(refname)", root).stdout.decode()
        objects = {}
        for line in out.splitlines():
            kind, oid, ref = line.split(" ", 2)
            objects[ref[len(root) :]] = (kind, oid)
        return objects

    def remote_branches(self) -> frozenset[str]:
        """Remote-tracking branches as ``<remote>/<branch>`` (``origin/next``), without ``<remote>/HEAD``."""
        out = self._run("for-each-ref", "--format=%(refname)", _REMOTES).stdout.decode()
        return frozenset(line[len(_REMOTES) :] for line in out.splitlines() if not line.endswith("/HEAD"))

    def resolve_branch(self, name: str) -> str | None:
        """The commit ``refs/heads/<name>`` points at now, or None when there is no such branch.

        Exactly that ref: git's name guessing would read ``refs/heads/refs/heads/<name>`` (or a tag, or a
        remote-tracking ref so named) for an absent ``refs/heads/<name>``. Names no such ref shadows are
        read through the long-lived ``cat-file`` process: fresh (loose and packed refs are re-read), without
        a process start-up per branch, and exact, since git tries the full name first. Shadowed names are
        read with ``for-each-ref``, which matches full names only. Valid branch names cannot spell git's
        revision syntax.
        """
        if name in self._shadowed_branches():
            out = self._run("for-each-ref", "--format=%(objecttype) %(objectname) %(refname)", branch_ref(name))
            for line in out.stdout.decode("utf-8", "surrogateescape").splitlines():
                kind, oid, ref = line.split(" ", 2)
                if ref == branch_ref(name):
                    return oid if kind == "commit" else None
            return None
        return self.resolve_ref(branch_ref(name))

    def _shadowed_branches(self) -> frozenset[str]:
        """Branch names whose ``refs/heads/<name>``, when absent, git's guessing would read as another ref.

        Such refs (``refs/heads/refs/heads/x``, ``refs/tags/refs/heads/x``, ...) are rare: one
        ``for-each-ref`` per process lists them, normally finding none.
        """
        if self._shadowed is None:
            prefixes = [f"{prefix}{_HEADS}" for prefix in _GUESSED_PREFIXES]
            out = self._run("for-each-ref", "--format=%(refname)", *prefixes).stdout.decode("utf-8", "surrogateescape")
            shadowed: set[str] = set()
            for ref in out.splitlines():
                name = next(ref[len(prefix) :] for prefix in prefixes if ref.startswith(prefix))
                shadowed.update((name, name.removesuffix("/HEAD")))
            self._shadowed = frozenset(shadowed)
        return self._shadowed

    def resolve_ref(self, ref: str) -> str | None:
        """The commit the full ref ``ref`` points at now, or None: read through the long-lived ``cat-file``.
        For a local branch, ``resolve_branch`` also guards against names git's guessing would shadow."""
        found = self._objects.request(f"{ref}\n".encode(), _read_batch_object)
        if found is None or found.kind != "commit":
            return None
        self._keep_commit(found)  # the tip's tree and parents are what its branch reads next
        return found.oid

    def branches_containing(self, commit: str, names: Iterable[str], root: str = _HEADS) -> frozenset[str]:
        """Those of the branches ``names`` under ``root`` that already contain ``commit`` (aligned with a target
        at ``commit``)."""
        return self._branch_names("--contains", commit, names, root)

    def branches_merged_into(self, commit: str, names: Iterable[str], root: str = _HEADS) -> frozenset[str]:
        """Those of the branches ``names`` under ``root`` whose tip is reachable from ``commit`` (a fast-forward
        aligns them)."""
        return self._branch_names("--merged", commit, names, root)

    def _branch_names(self, relation: str, commit: str, names: Iterable[str], root: str) -> frozenset[str]:
        """Those of ``names`` whose ref under ``root`` stands in ``relation`` to ``commit``. Up to
        ``NAMED_REFS_AT_MOST`` names, only their refs are given to git, as patterns (a ref name cannot hold a
        glob character; what else a pattern matches, such as a ref inside its name, is dropped), at most
        ``PATHSPEC_BYTES`` of them a call: the cost follows ``names``, not every ref under ``root`` (backups
        included). More names are looked for among all of ``root``: git matches every ref against every
        pattern, which costs more than it saves there."""
        wanted = frozenset(names)
        found: set[str] = set()
        named = len(wanted) <= NAMED_REFS_AT_MOST
        for refs in _runs_of(sorted(root + name for name in wanted), PATHSPEC_BYTES) if named else [[root]]:
            out = self._run("for-each-ref", "--format=%(refname)", f"{relation}={commit}", *refs).stdout
            found.update(ref[len(root) :] for ref in out.decode("utf-8", "surrogateescape").splitlines())
        return frozenset(found & wanted)

    # -- remotes --------------------------------------------------------------------------------------------

    def remote_names(self) -> frozenset[str]:
        """The remotes configured in the repository (``git remote``)."""
        return frozenset(self._run("remote").stdout.decode().split())

    def fetch(self, remote: str, refspecs: Mapping[str, str], timeout: float | None = None) -> None:
        """One ``git fetch`` of exactly ``refspecs`` (remote ref -> local ref, forced): no tags, no other refs,
        no ``FETCH_HEAD``, no submodules. ``MissingRemoteRef`` when a listed ref is missing (git stops at the
        first), ``FetchRejected`` when git left local refs as they were (it says so only in a warning),
        ``GitError`` when the remote fails otherwise."""
        specs = [f"+{source}:{destination}" for source, destination in refspecs.items()]
        done = self._run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--recurse-submodules=no",
                         "--no-auto-gc", "--end-of-options", remote, *specs, timeout=timeout,
                         known={"couldn't find remote ref": MissingRemoteRef})  # fmt: skip
        stderr = done.stderr.decode("utf-8", "surrogateescape")
        rejected = dict(_FETCH_REJECTED.findall(stderr))
        if rejected:
            raise FetchRejected(("fetch", remote), stderr, rejected)

    def remote_refs(
        self, remote: str, refs: Iterable[str], timeout: float | None = None, *, inside: str | None = None
    ) -> dict[str, str]:
        """The commits the remote holds at the full refs ``refs`` (absent ones are left out) and, given a full
        ref ``inside``, at every ref inside its name (``inside/...``, a folder there): one ``ls-remote``."""
        wanted = frozenset(refs)
        folder = () if inside is None else (f"{inside}/",)
        patterns = (f"{name}*" for name in folder)  # a ref name cannot hold a glob character
        args = ("ls-remote", "--refs", "--end-of-options", remote, *sorted(wanted), *patterns)
        out = self._run(*args, timeout=timeout).stdout
        found = (line.split("\t", 1) for line in out.decode("utf-8", "surrogateescape").splitlines())
        return {ref: oid for oid, ref in found if ref in wanted or ref.startswith(folder)}

    def push(
        self, remote: str, updates: Sequence[PushUpdate], *, atomic: bool = False, timeout: float | None = None
    ) -> dict[str, PushedRef]:
        """One ``git push --porcelain`` of ``updates``, each with its own lease; what happened, per ref.

        A ref the remote refused (lease lost, a hook) is a ``PushedRef`` that did not land; the others
        still land unless ``atomic``. ``GitError`` when the push did not get an answer (network,
        authentication, no such remote): then no ref is reported and nothing is known to have landed.
        """
        args = ("push", "--porcelain", "--no-follow-tags", "--recurse-submodules=no", "--no-signed",
                "--atomic" if atomic else "--no-atomic", *(update.lease_option() for update in updates),
                "--end-of-options", remote, *(update.refspec() for update in updates))  # fmt: skip
        done = self._run(*args, ok=(0, 1), timeout=timeout)
        answers = _parse_push(done.stdout)
        if done.returncode != 0 and not answers:
            raise GitError(args[:2], done.returncode, done.stderr.decode("utf-8", "replace"))
        return answers

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self._run("merge-base", "--is-ancestor", ancestor, descendant, ok=(0, 1)).returncode == 0

    def update_refs(self, updates: Sequence[RefUpdate]) -> None:
        """Apply ``updates`` as one atomic transaction; ``RefUpdateRejected`` if any ref is not as expected.

        Sent to a long-lived ``update-ref --stdin`` (one transaction per call). git ends that process on a
        rejected transaction; the next call starts a new one.
        """
        script = "start\n" + "".join(f"{update.command()}\n" for update in updates) + "prepare\ncommit\n"
        try:
            answers = self._refs.request(script.encode(), lambda reader: [reader.read_until(b"\n") for _ in range(3)])
        except GitTimeout:
            raise
        except GitError as exc:
            raise RefUpdateRejected(exc.args_, exc.returncode, exc.stderr) from None
        if answers != [b"start: ok\n", b"prepare: ok\n", b"commit: ok\n"]:
            raise RefUpdateRejected(("update-ref", "--stdin"), 1, b"".join(answers).decode("utf-8", "replace"))

    def checkouts(self) -> tuple[Checkout, ...]:
        """Branches that a worktree has checked out, or is rebasing or bisecting, with the worktree's path.

        Read from the worktrees' administrative files, as ``git worktree list`` does, so the check right
        before a ref moves is fresh and costs no process.
        """
        found = []
        for admin, path in self._worktree_admin_dirs():
            try:
                present = frozenset(os.listdir(admin))  # one call instead of failed opens of absent markers
            except OSError:
                continue
            head = _read_text(admin / "HEAD")
            if head.startswith(f"ref: {_HEADS}") and not (admin == self.location.common_dir and self.location.bare):
                found.append(Checkout(path, head[len("ref: ") + len(_HEADS) :], "checked out"))
            for marker, state in (
                ("rebase-merge/head-name", "rebasing"),
                ("rebase-apply/head-name", "rebasing"),
                ("BISECT_START", "bisecting"),
            ):
                name = _read_text(admin / marker) if marker.split("/")[0] in present else ""
                if name:
                    found.append(Checkout(path, name.removeprefix(_HEADS), state))
        return tuple(found)

    def _worktree_admin_dirs(self) -> list[tuple[Path, str]]:
        common = self.location.common_dir
        dirs = [(common, str(self.location.main_work_tree or common))]
        linked = common / "worktrees"
        if linked.is_dir():
            for admin in sorted(linked.iterdir()):
                gitdir = _read_text(admin / "gitdir")
                dirs.append((admin, str(Path(gitdir).parent) if gitdir else str(admin)))
        return dirs

    # -- objects --------------------------------------------------------------------------------------------

    def identity_problem(self) -> str | None:
        """Why git could not author or commit a commit here (no user.name / user.email), or None."""
        for role in ("GIT_AUTHOR", "GIT_COMMITTER"):
            done = self._run("var", f"{role}_IDENT", ok=(0, 128))
            if done.returncode != 0:
                lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
                fatal = [line for line in lines if line.startswith("fatal:")]
                return (fatal or lines or [f"git var {role}_IDENT failed"])[-1]
        return None

    def merge_tree(self, ours: str, theirs: str, *, timeout: float | None = None) -> MergeTree:
        """Merge ``theirs`` into ``ours`` in memory and write the resulting tree (conflicted or not); a merge
        ``merge_ahead`` already did is answered from its result, once."""
        with self._ahead_lock:
            ahead = self._ahead.pop((ours, theirs), None)
        if ahead is not None:
            return ahead
        args = ("merge-tree", "--write-tree", "-z", "--name-only", ours, theirs)
        with self._noted_if_killed():
            done = self._run(*args, ok=(0, 1), timeout=timeout, known={"unrelated histories": UnrelatedHistories})
        return _merge_at(done.stdout.split(b"\0"), 0, conflicted=done.returncode == 1)[0]

    def merge_trees(self, pairs: Sequence[tuple[str, str]], *, timeout: float | None = None) -> tuple[MergeTree, ...]:
        """``merge_tree`` of each ``(ours, theirs)`` pair, all in one ``merge-tree --stdin`` process.

        git 2.39 answers only once its input ends, so this serves a batch known up front (the merges of a
        queue), not a long-lived helper. A process start-up per batch instead of one per merge.
        """
        return self._merge_batch(pairs, timeout, self.env, _BATCH_OPTIONS)

    def probe_merges(self, pairs: Sequence[tuple[str, str]], *, timeout: float | None = None) -> tuple[MergeTree, ...]:
        """``merge_trees`` for merges that are only looked at (which paths conflict; one round of a conflict
        search, the pairs of a conflict matrix), never committed.

        The objects they write go to a throwaway object directory that borrows the repository's (as an
        alternate) and is deleted afterwards: probes leave nothing in the repository, and they write to
        memory where ``scratch.memory_dir`` finds room, uncompressed. Measured here: 16 probe merges of pytest's
        history took 0.34 s writing their loose objects to disk, 0.09 s writing them to ``/dev/shm``.
        """
        with self._throwaway_objects() as throwaway:
            if throwaway is None:  # no directory: the objects go into the repository, compressed as any merge's
                return self._merge_batch(pairs, timeout, self.env, _BATCH_OPTIONS)
            return self._merge_batch(pairs, timeout, throwaway, _THROWAWAY_OPTIONS)

    @contextlib.contextmanager
    def _throwaway_objects(self) -> Iterator[Mapping[str, str] | None]:
        """The environment of git processes whose new objects go to a fresh directory, deleted on exit. The
        directories live in one scratch directory per process, held while it runs, so the next run removes
        them should this process be killed (``housekeeping.sweep``). None when none can be made (no room, no
        file descriptors): the objects then go into the repository, as any merge's do."""
        objects = str(self._object_store().directory)  # before the directory: a failure here leaves none behind
        try:
            directory = self._throwaway_directory()
        except OSError:
            yield None
            return
        borrowed = [
            _quoted_path(objects),
            *filter(None, [self.env.get("GIT_ALTERNATE_OBJECT_DIRECTORIES")]),
        ]
        try:
            yield {
                **self.env,
                "GIT_OBJECT_DIRECTORY": directory,
                "GIT_ALTERNATE_OBJECT_DIRECTORIES": ":".join(borrowed),
            }
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _throwaway_directory(self) -> str:
        with self._lazy_lock:
            if self._probes is None:
                self._probes = create_scratch(f"probes-{os.getpid()}", memory_dir())
        return tempfile.mkdtemp(dir=self._probes)

    @contextlib.contextmanager
    def _noted_if_killed(self) -> Iterator[None]:
        """Around a merge process: if it is killed (a timeout, Ctrl-C, pytest-timeout's exception), create the
        ``killed_merges`` file, so that the run's end removes the drivers' files it may have left
        (``remove_driver_files``). Nothing is scanned or removed here: other merges (threads, workers, the
        user's) run in the same directory, their drivers reading their files."""
        try:
            yield
        except BaseException as error:
            if self._killed_merges is not None and (
                isinstance(error, GitTimeout) or not isinstance(error, AlignmentError)
            ):
                with contextlib.suppress(OSError):
                    self._killed_merges.touch()
            raise

    def _merge_batch(
        self,
        pairs: Sequence[tuple[str, str]],
        timeout: float | None,
        env: Mapping[str, str],
        options: tuple[str, ...],
    ) -> tuple[MergeTree, ...]:
        if not pairs:
            return ()
        payload = "".join(f"{ours} {theirs}\n" for ours, theirs in pairs).encode()
        args = ("merge-tree", "--stdin", "-z", "--name-only")
        with self._noted_if_killed():
            done = self._run(*args, stdin=payload, ok=(0, 1), timeout=timeout, options=options, env=env)
        fields = done.stdout.split(b"\0")
        merges, index = [], 0
        for _ in pairs:
            status = fields[index] if index < len(fields) else b"missing"
            if status not in (b"0", b"1"):
                raise GitError(("merge-tree", "--stdin"), done.returncode, done.stderr.decode("utf-8", "replace"))
            merge, index = _merge_at(fields, index + 1, conflicted=status == b"0")
            merges.append(merge)
            index += 1  # the empty field that ends each merge
        return tuple(merges)

    def commit_tree(self, tree: str, parents: Sequence[str], message: str) -> str:
        """Write a commit object, as ``git commit-tree`` would, without starting a process (``_ObjectStore``).

        Author and committer come from ``git var`` (config and ``GIT_*`` variables, read once); their time is
        now unless ``GIT_AUTHOR_DATE`` / ``GIT_COMMITTER_DATE`` fix it. Where the repository's settings ask
        for more (a group's permissions, loose objects synced to disk: ``_GIT_WRITES_WHEN``), git's
        ``hash-object`` writes it. A write that fails (disk full) is an ``ObjectWriteError``.
        """
        lines = [
            f"tree {tree}",
            *(f"parent {parent}" for parent in parents),
            f"author {self._identity('GIT_AUTHOR')}",
            f"committer {self._identity('GIT_COMMITTER')}",
        ]
        body = ("\n".join(lines) + "\n\n" + message).encode("utf-8")
        store = self._object_store()
        if store.git_writes:
            commit = self._run("hash-object", "-w", "-t", "commit", "--stdin", stdin=body).stdout.decode().strip()
        else:
            try:
                commit = store.write("commit", body)
            except OSError as error:
                reason = error.strerror or str(error)
                raise ObjectWriteError(f"cannot write a commit into {store.directory}: {reason}") from None
        self._parsed.keep_commit(commit, tree, tuple(parents))  # the next reader of this commit wants its tree
        return commit

    def object_format(self) -> str:
        """The repository's hash (``sha1``, ``sha256``): a repository can fetch only from one of its own kind."""
        return self._object_store().hash_name

    def _object_store(self) -> _ObjectStore:
        with self._lazy_lock:
            if self._store is None:
                found = self._run(
                    "rev-parse", "--path-format=absolute", "--git-path", "objects", "--show-object-format"
                )
                directory, hash_name = found.stdout.decode("utf-8", "surrogateescape").rstrip("\n").rsplit("\n", 1)
                settings = self._run("config", "--get-regexp", _GIT_WRITES_WHEN, ok=(0, 1)).stdout
                self._store = _ObjectStore(Path(directory), hash_name, _git_must_write(settings))
            return self._store

    def person(self, role: str) -> tuple[str, str]:
        """The name and email git gives ``GIT_AUTHOR`` or ``GIT_COMMITTER`` here (its config, ``GIT_*_NAME`` /
        ``GIT_*_EMAIL``): what worker clones are told to use (``clones.WorkerClones``)."""
        name, _, email = self._ident(role).rsplit(" ", 2)[0].partition(" <")
        return name, email.removesuffix(">")

    def _ident(self, role: str) -> str:
        """``git var ROLE_IDENT`` (read once): ``Name <email> <time> <zone>``."""
        if role not in self._identities:
            self._identities[role] = self._run("var", f"{role}_IDENT").stdout.decode("utf-8").strip()
        return self._identities[role]

    def _identity(self, role: str) -> str:
        """``Name <email> <time> <zone>`` for ``GIT_AUTHOR`` or ``GIT_COMMITTER``."""
        identity = self._ident(role)
        if f"{role}_DATE" in self.env:
            return identity
        person = identity.rsplit(" ", 2)[0]
        offset = time.localtime().tm_gmtoff // 60
        zone = f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        return f"{person} {int(time.time())} {zone}"

    def read_object(self, oid: str) -> StoredObject | None:
        """Object ``oid`` (its id, type and content), or None when it does not exist."""
        return self._objects.request(f"{oid}\n".encode(), _read_batch_object)

    def read_objects(self, oids: Sequence[str]) -> list[StoredObject | None]:
        """``read_object`` of each of ``oids``, in one round trip to the long-lived ``cat-file`` (keep them
        few: the request is written whole before the answers are read)."""
        payload = "".join(f"{oid}\n" for oid in oids).encode()
        return self._objects.request(payload, lambda reader: [_read_batch_object(reader) for _ in oids])

    def read_blob(self, oid: str) -> bytes:
        found = self.read_object(oid)
        if found is None or found.kind != "blob":
            raise GitError(("cat-file", oid), 1, f"{oid} is not a blob")
        return found.content

    def blob_at(self, commit: str, path: str) -> str | None:
        """The blob id of ``path`` in ``commit``, or None when the path is absent or not a file."""
        found = self.entries_at(commit, [path])[path]
        return found[1] if found is not None and found[0] not in (_TREE_MODE, _GITLINK_MODE) else None

    def entries_at(self, commit: str, paths: Iterable[str]) -> dict[str, tuple[str, str] | None]:
        """``(mode, object id)`` of each of ``paths`` in ``commit``, None where there is no such entry.

        Walks the commit's trees through the long-lived ``cat-file``, all paths a level at a time: no process
        start-up, and the trees of one level not kept yet are read in one round trip.
        """
        trees = _TreeReader(self)
        root = (_TREE_MODE, trees.root(commit))
        parts = {path: path.split("/") for path in paths}
        entries: dict[str, tuple[str, str] | None] = dict.fromkeys(parts, root)
        for depth in range(max(map(len, parts.values()), default=0)):
            walking = [path for path, names in parts.items() if depth < len(names)]
            trees.prefetch(entry[1] for path in walking if (entry := entries[path]) and entry[0] == _TREE_MODE)
            for path in walking:
                entry = entries[path]
                within = entry is not None and entry[0] == _TREE_MODE
                entries[path] = trees.entries(entry[1]).get(parts[path][depth]) if entry and within else None
        return entries

    def tree_changes(self, old: str, new: str) -> dict[str, tuple[str, str] | None]:
        """The files that differ between commits ``old`` and ``new``: path -> ``(mode, object id)`` in
        ``new``, None where ``new`` lacks it. No line counts.

        Read through the long-lived ``cat-file``, descending only into subtrees whose ids differ: the cost
        follows what changed, not the size of the repository. A level at a time: the trees of one level not
        kept yet are read in one round trip.
        """
        trees = _TreeReader(self)
        changes: dict[str, tuple[str, str] | None] = {}
        level: list[tuple[str, str | None, str | None]] = [("", trees.root(old), trees.root(new))]
        while level:
            trees.prefetch(tree for _, old_tree, new_tree in level for tree in (old_tree, new_tree) if tree)
            deeper: list[tuple[str, str | None, str | None]] = []
            for prefix, old_tree, new_tree in level:
                before = trees.entries(old_tree) if old_tree else {}
                after = trees.entries(new_tree) if new_tree else {}
                for name in before.keys() | after.keys():
                    was, now = before.get(name), after.get(name)
                    if was == now:
                        continue
                    was_tree = was[1] if was is not None and was[0] == _TREE_MODE else None
                    now_tree = now[1] if now is not None and now[0] == _TREE_MODE else None
                    if was_tree or now_tree:
                        deeper.append((f"{prefix}{name}/", was_tree, now_tree))
                    if (was is not None and not was_tree) or (now is not None and not now_tree):
                        changes[prefix + name] = None if now_tree else now
            level = deeper
        return changes

    def changed_files(
        self, old: str, new: str, paths: Sequence[str], *, renames: bool = False
    ) -> tuple[FileChange, ...]:
        """Those of ``paths`` that differ between commits ``old`` and ``new``, with line counts and blob ids;
        with ``renames``, a deleted and an added one of them that git pairs (``-M``) are one rename.

        One ``diff-tree`` limited to ``paths``, so line counts are computed for just them (beyond
        ``PATHSPEC_BYTES`` of paths, the whole diff filtered).
        """
        if not paths:
            return ()
        diff = (*_DIFF_TREE, "-M" if renames else "--no-renames", old, new)
        if sum(len(path) for path in paths) > PATHSPEC_BYTES:
            wanted = frozenset(paths)
            return tuple(change for change in _parse_diff(self._run(*diff).stdout) if change.path in wanted)
        return _parse_diff(self._run(*diff, "--", *(_literal(path) for path in paths)).stdout)

    def combined_files(
        self, old_tip: str, new_tip: str, candidates: Mapping[str, tuple[str, str] | None]
    ) -> tuple[FileChange, ...]:
        """Files whose content at ``new_tip`` (a merge of a target into ``old_tip``) neither ``old_tip`` nor
        the target had: what the merge itself combined, with +/- counts against ``old_tip``.

        ``candidates`` is ``tree_changes(target, new_tip)``: every other file the merge changes comes
        unchanged from the target. Finding these costs what the branch's own changes cost, not what the
        target brings in: only the branch's own files are compared with the old tip's entry.
        """
        before = self.entries_at(old_tip, candidates)
        paths = sorted(path for path, entry in candidates.items() if before[path] != entry)
        sources = self._rename_sources(old_tip, new_tip, [path for path in paths if before[path] is None])
        wanted = frozenset(paths)
        changed = self.changed_files(old_tip, new_tip, [*paths, *sources], renames=bool(sources))
        merged = tuple(change for change in changed if change.path in wanted)
        listed = {change.path for change in merged} | {change.old_path for change in merged if change.old_path}
        if not wanted <= listed:  # each of them differs from the old tip: git must list every one
            missing = sorted(wanted - listed)
            raise GitError(("diff-tree", old_tip, new_tip), 1, f"git did not list changed files {missing[:5]}")
        return merged

    def _rename_sources(self, old_tip: str, new_tip: str, renamed: Sequence[str]) -> list[str]:
        """Where the merged files ``renamed`` come from. A file the merge combined that the old tip lacks is
        not one the branch added (that one the target lacks too, so the merge takes it unchanged): it is one
        the target renamed and the branch changed, the branch's change carried over to the new name. Its
        source is among the old tip's files the new tip lacks: those, for the diff to pair as ``git diff -M``
        does (``old -> new``, +/- against the old file). Read only when there is such a file (rare), through
        the long-lived ``cat-file``: the diff stays one process, with rename detection limited to these files."""
        if not renamed:
            return []
        return [path for path, entry in self.tree_changes(old_tip, new_tip).items() if entry is None]

    def history_window(self, tip: str, limit: int) -> list[tuple[str, tuple[str, ...], str, str]]:
        """The newest ``limit`` commits of ``tip`` in topological order: ``(oid, parents, author, subject)``."""
        out = self._run("log", "-z", "--topo-order", f"--max-count={limit}", f"--format=%P%n{_COMMIT_FORMAT}", tip,
                       "--").stdout  # fmt: skip
        entries = []
        for record in out.split(b"\0"):
            if record:
                parents, _, fields = record.partition(b"\n")
                commit = _commit_info(fields)
                entries.append((commit.oid, tuple(parents.decode().split()), commit.author, commit.subject))
        return entries

    def commit_parents(self, oid: str) -> tuple[str, ...]:
        """The parents of commit ``oid``: kept from an earlier read of it, or read through the long-lived
        ``cat-file`` (and its tree kept for ``_TreeReader.root``)."""
        parents = self._parsed.parents(oid)
        if parents is None:
            parents = self._keep_commit(self._commit(oid))[1]
        return parents

    def _commit(self, oid: str) -> StoredObject:
        found = self.read_object(oid)
        if found is None or found.kind != "commit":
            raise GitError(("cat-file", oid), 1, f"{oid} is not a commit")
        return found

    def _keep_commit(self, commit: StoredObject) -> tuple[str, tuple[str, ...]]:
        """Keep the tree and parents of ``commit`` (a commit object read whole) for later calls."""
        header = commit.content.split(b"\n\n", 1)[0].decode("utf-8", "replace").split("\n")
        parents = tuple(line[len("parent ") :] for line in header[1:] if line.startswith("parent "))
        return self._parsed.keep_commit(commit.oid, header[0].removeprefix("tree "), parents), parents

    def commits_between(self, exclude: str, include: str, limit: int) -> tuple[tuple[CommitInfo, ...], bool]:
        """Up to ``limit`` commits reachable from ``include`` but not ``exclude``, newest first.

        The flag says whether more exist beyond the limit.
        """
        out = self._run(
            "log",
            "-z",
            "--topo-order",
            f"--max-count={limit + 1}",
            f"--format={_COMMIT_FORMAT}",
            include,
            f"^{exclude}",
            "--",
        ).stdout
        commits = [_commit_info(entry) for entry in out.split(b"\0") if entry]
        return tuple(commits[:limit]), len(commits) > limit

    def first_parent_line(
        self, exclude: str, include: str, paths: Sequence[str] = ()
    ) -> tuple[tuple[CommitInfo, frozenset[str]], ...]:
        """The commits on ``include``'s first-parent line that ``exclude`` lacks, oldest first: what conflict
        bisection walks. With ``paths``, only the commits that changed one of them (against their first
        parent), each with the ones it changed; git prunes by path, so this stays cheap on long histories."""
        options = ("--no-renames", "--name-only") if paths else ()
        pathspecs = [_literal(path) for path in paths]
        out = self._run("log", "-z", "--first-parent", "--reverse", *options, f"--format=%x00{_COMMIT_FORMAT}",
                       include, *self._line_bound(exclude, include, paths), "--", *pathspecs).stdout  # fmt: skip
        # Each commit is NUL, then its fields, then NUL and "\n" before its NUL-terminated paths. A path is
        # never empty, so two NULs in a row always start a commit.
        line = []
        for record in out.removeprefix(b"\0").split(b"\0\0"):
            header, *names = record.split(b"\0")
            if header:
                changed = frozenset(
                    name.removeprefix(b"\n").decode("utf-8", "surrogateescape") for name in names if name
                )
                line.append((_commit_info(header), changed))
        return tuple(line)

    def _line_bound(self, exclude: str, include: str, paths: Sequence[str]) -> list[str]:
        """What ends ``include``'s first-parent line where ``exclude``'s history begins: ``^exclude``, or with
        ``paths`` the line's first commit that ``exclude`` has (the same line: every older one it has too).

        Two reasons, both for a path-limited walk. Speed: it pays a tree diff for each commit it meets, and to
        exclude ``exclude``'s history it meets all of it down to where the line joins it, every merged topic
        included (git/git's history: 75 ms for a line of 105 commits, 10 ms bounded by the line's own commit,
        plus 7 ms for this walk without paths). Correctness: a merge's difference with a parent that git found
        excluded, rather than was told to exclude, does not count while another parent is not excluded, so the
        line's oldest commit, a merge whose change came from the side it merged, was hidden. ``rev-list`` reads
        the history as git sees it (replaced or shallow parents too).
        """
        if not paths:
            return [f"^{exclude}"]
        walk = self._run("rev-list", "--first-parent", "--parents", include, f"^{exclude}", "--").stdout.strip()
        if not walk:
            return [f"^{exclude}"]  # the line brings nothing: nothing to walk either way
        parents = walk.rsplit(b"\n", 1)[-1].decode().split()[1:]  # the oldest commit's, listed last
        return [f"^{parents[0]}"] if parents else []  # no parent: the line reaches a root commit

    # -- worktrees and maintenance ---------------------------------------------------------------------------

    def own_commits(self, include: str, exclude: str, timeout: float | None = None) -> tuple[OwnCommit, ...]:
        """The commits reachable from ``include`` but not from ``exclude``, newest first (children before parents)."""
        return self._commits_of(include, f"^{exclude}", timeout=timeout)

    def rebase(self, worktree: Path, onto: str, timeout: float | None = None) -> Rebased:
        """Rebase the detached HEAD of ``worktree`` (a branch without merges) onto ``onto``.

        A rebase that stops on a conflict is aborted, so the worktree is left clean for removal. One that
        finishes made a line of commits on ``onto`` (none when it dropped them all: HEAD is ``onto``), listed
        by the process that would otherwise only read HEAD.
        """
        done = self._run("rebase", "--no-update-refs", onto, cwd=worktree, ok=(0, 1), timeout=timeout)
        if done.returncode == 0:
            replayed = self._commits_of("HEAD", f"^{onto}", cwd=worktree, timeout=timeout)
            return Rebased(replayed[0].oid if replayed else onto, replayed)
        unmerged = self._run("diff", "--name-only", "-z", "--diff-filter=U", cwd=worktree).stdout
        self._run("rebase", "--abort", cwd=worktree, ok=(0, 128))
        paths = tuple(path.decode("utf-8", "surrogateescape") for path in unmerged.split(b"\0") if path)
        return Rebased(None, conflicted=paths)

    def _commits_of(
        self, *revisions: str, cwd: Path | None = None, timeout: float | None = None
    ) -> tuple[OwnCommit, ...]:
        """``OwnCommit`` of each commit ``rev-list REVISIONS`` walks, in topological order (children first)."""
        args = ("rev-list", "--topo-order", "--no-commit-header", f"--format={_OWN_FORMAT}", *revisions, "--")
        out = self._run(*args, cwd=cwd, timeout=timeout).stdout
        commits = []
        for record in out.split(b"\0\n")[:-1]:
            oid, parents, identity = record.decode("utf-8", "surrogateescape").split("\0", 2)
            commits.append(OwnCommit(oid, tuple(parents.split()), identity))
        return tuple(commits)

    def add_worktree(self, path: Path, commit: str, timeout: float | None = None) -> None:
        """A detached worktree of ``commit`` at ``path``; ``CheckoutFailed`` names why git could not make it."""
        try:
            self._run("worktree", "add", "--detach", "--quiet", str(path), commit, timeout=timeout)
        except (GitTimeout, RepositoryGone):
            raise
        except GitError as error:
            raise CheckoutFailed(error.args_, error.returncode, error.stderr) from None

    def remove_worktree(self, path: Path) -> None:
        """Remove a worktree of ours; its files and administrative entry go even if git refuses."""
        try:
            self._run("worktree", "remove", "--force", "--force", str(path), ok=(0, 128))
        finally:
            shutil.rmtree(path, ignore_errors=True)
            self.forget_worktrees(lambda worktree: worktree == path.resolve())
            self._forget_interrupted_add(path)

    def _forget_interrupted_add(self, path: Path) -> None:
        """An ``add`` killed before it wrote its entry's ``gitdir`` leaves an entry that names no worktree.
        git names the entry after the worktree, and ours have names no other worktree has: that one is ours."""
        admin = self.location.common_dir / "worktrees" / path.name
        if admin.is_dir() and not (admin / "gitdir").exists():
            shutil.rmtree(admin, ignore_errors=True)

    def linked_worktrees(self) -> list[Path]:
        """The paths of all linked worktrees (not the main one)."""
        return [Path(location).resolve() for _, location in self._worktree_admin_dirs()[1:]]

    def forget_worktrees(self, ours: Callable[[Path], bool]) -> list[Path]:
        """Delete the administrative entries of worktrees ``ours`` accepts whose files are gone.

        Unlike ``git worktree prune`` this never touches other worktrees (a user's worktree on an unmounted
        disk stays registered), and it also removes entries git left locked by an interrupted ``add``.
        """
        forgotten = []
        for admin, location in self._worktree_admin_dirs()[1:]:
            worktree = Path(location).resolve()
            if ours(worktree) and not worktree.exists():
                shutil.rmtree(admin, ignore_errors=True)
                forgotten.append(worktree)
        return forgotten

    def merge_drivers_configured(self) -> bool:
        """Whether git's configuration for the repository defines a merge driver (``merge.<name>.driver``):
        only then can a killed merge leave files in ``RepoLocation.run_dir`` (``driver_files``)."""
        done = self._run("config", "--get-regexp", r"^merge\..+\.driver$", ok=(0, 1))
        return done.returncode == 0

    def is_shallow(self) -> bool:
        """Whether the repository is a shallow clone (its history cut off: merges would be wrong)."""
        return (self.location.common_dir / "shallow").exists()

    def stale_ref_locks(self) -> list[Path]:
        """Lock files of branch refs and of ``packed-refs``: left by a git process that died, or held by a
        live one; either way, the branch cannot move while the file exists."""
        common = self.location.common_dir
        heads = common / "refs" / "heads"
        locks = sorted(heads.rglob("*.lock")) if heads.is_dir() else []
        packed = common / "packed-refs.lock"
        return locks + ([packed] if packed.exists() else [])

    def has_commit_graph(self) -> bool:
        info = self.location.common_dir / "objects" / "info"
        return (info / "commit-graph").exists() or (info / "commit-graphs" / "commit-graph-chain").exists()

    def write_commit_graph(self) -> None:
        """Write git's commit-graph cache (as ``git gc`` would): it changes no ref and no object."""
        self._run("commit-graph", "write", "--reachable", timeout=max(self.timeout, 600))

    @classmethod
    def init_bare(cls, path: Path, *, default_branch: str = "main", object_format: str | None = None) -> Git:
        """Create an empty bare repository at ``path`` (demo and benchmark repositories, worker clones);
        ``object_format``: its hash (``sha1``, ``sha256``; git's default when None)."""
        formats = () if object_format is None else (f"--object-format={object_format}",)
        args = ("init", "--quiet", "--bare", f"--initial-branch={default_branch}", *formats, str(path))
        done = run_process(["git", *_SAFETY_OPTIONS, *args], env=git_environment(), timeout=60)
        if done.returncode != 0:
            raise GitError(args, done.returncode, done.stderr.decode("utf-8", "replace"))
        return cls(RepoLocation(path.resolve(), path.resolve(), None))

    def mark_worker_clone(self) -> None:
        """Mark the repository as a worker clone the tool made (``alignment.workerClone`` in its own config): only
        a marked one is ever removed (``clones``); its name proves nothing."""
        self._run("config", "--local", WORKER_CLONE_MARK, "true")

    def is_worker_clone(self) -> bool:
        """Whether the repository carries ``mark_worker_clone``'s mark (its own config only, not a global one)."""
        done = self._run("config", "--local", "--type=bool", "--get", WORKER_CLONE_MARK, ok=(0, 1))
        return done.stdout.strip() == b"true"

    def set_identity(self, name: str, email: str, *, scope: str = "user") -> None:
        """Write ``user.name`` and ``user.email`` (``scope``: ``author.*``, ``committer.*``) into the repository's
        config (demo and benchmark repositories, so that runs on them can commit anywhere; worker clones)."""
        self._run("config", f"{scope}.name", name)
        self._run("config", f"{scope}.email", email)

    def fast_import(self, stream: bytes) -> None:
        """Feed a ``git fast-import`` stream (used to build demo and benchmark repositories)."""
        self._run("fast-import", "--quiet", "--force", stdin=stream, timeout=max(self.timeout, 600))

    def remote_url(self, remote: str) -> str:
        """The URL ``remote`` fetches from (``git remote get-url``), as git reads it here: a local path that is
        relative made absolute against ``RepoLocation.run_dir``, so that it means the same anywhere."""
        return self._remote_urls(remote)[0]

    def remote_push_urls(self, remote: str) -> tuple[str, ...]:
        """The URLs ``git push REMOTE`` pushes to here (``git remote get-url --push --all``: each ``pushurl``,
        else the URL, ``pushInsteadOf`` applied), a relative local path made absolute as in ``remote_url``."""
        return self._remote_urls(remote, "--push", "--all")

    def _remote_urls(self, remote: str, *options: str) -> tuple[str, ...]:
        out = self._run("remote", "get-url", *options, "--end-of-options", remote).stdout.decode()
        return tuple(self._absolute_url(url) for url in out.splitlines() if url)

    def _absolute_url(self, url: str) -> str:
        """``url``, or a local path (git's rule: no colon before the first slash) made absolute."""
        local = "://" not in url and ":" not in url.split("/", 1)[0]
        return str((self.location.run_dir / url).resolve()) if local else url

    def set_remote_urls(self, remote: str, url: str, push_urls: Sequence[str]) -> None:
        """Point ``remote`` at ``url`` to fetch and at ``push_urls`` to push (a ``pushurl`` each, none when
        that is ``url`` alone), adding it if missing (a worker's clone; no fetch refspec: the run fetches
        explicit refspecs)."""
        self._run("config", f"remote.{remote}.url", url)
        self._run("config", "--unset-all", f"remote.{remote}.pushurl", ok=(0, 5))  # 5: there was none
        for push_url in () if tuple(push_urls) == (url,) else push_urls:
            self._run("config", "--add", f"remote.{remote}.pushurl", push_url)

    def merge_ahead(self, pairs: Sequence[tuple[str, str]], *, timeout: float | None = None) -> None:
        """Do the merges of ``pairs`` now, in one ``merge-tree --stdin`` process (``merge_trees``), and keep
        each result until ``merge_tree`` asks for it: a process start-up per batch instead of one per merge.
        A merge result depends only on its two commits, so an answer given later is the same one."""
        merges = self.merge_trees(pairs, timeout=timeout)
        with self._ahead_lock:
            self._ahead.update(zip(pairs, merges, strict=True))


@dataclass(frozen=True)
class _ObjectStore:
    """A repository's loose objects, written here as git writes them (``write_loose_object`` in git's
    object-file.c): zlib-compressed ``<type> <size>\\0<body>`` named by its hash (``sha1`` or ``sha256``), in a
    file created beside its final name with mode 0444 (less the umask) and linked there, so a reader never
    sees half an object and an object that is already there stays as it was. Like git by default it does not
    ``fsync`` loose objects; where the settings ask for that, git writes them (``git_writes``).

    It replaces a long-lived ``hash-object`` per busy thread (4.3 MB of RSS each, measured here) and the
    commit file each of its round trips needed."""

    directory: Path
    hash_name: str
    git_writes: bool

    def write(self, kind: str, body: bytes) -> str:
        content = f"{kind} {len(body)}\0".encode() + body
        oid = hashlib.new(self.hash_name, content).hexdigest()
        folder = self.directory / oid[:2]
        final = folder / oid[2:]
        try:
            os.utime(final)  # already there: freshened (as git does, so that a prune keeps it), not rewritten
            return oid
        except PermissionError:  # another user's file, or a folder we may not search: which one, stat says
            if final.exists():
                return oid
        except FileNotFoundError:
            pass
        temporary, descriptor = self._create(folder)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(zlib.compress(content, 1))  # git's default core.looseCompression
            try:
                os.link(temporary, final)
            except FileExistsError:  # written meanwhile by another: the same content
                pass
            except OSError:  # a file system without hard links: git renames then
                os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        return oid

    @staticmethod
    def _create(folder: Path) -> tuple[Path, int]:
        """A new file in ``folder`` (made if missing) with mode 0444 less the umask, open for writing."""
        while True:
            temporary = folder / f"tmp_obj_{secrets.token_hex(6)}"
            try:
                return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            except FileExistsError:
                continue
            except FileNotFoundError:
                folder.mkdir(mode=0o777, exist_ok=True)


# Settings under which git, not ``_ObjectStore``, writes commits: permissions for a group
# (``core.sharedRepository``), loose objects synced to disk (``core.fsync``, ``core.fsyncObjectFiles``), a
# second hash to record (``extensions.compatObjectFormat``, newer git).
_GIT_WRITES_WHEN = r"^(core\.(sharedrepository|fsync|fsyncobjectfiles)|extensions\.compatobjectformat)$"
_NO = ("none", "false", "no", "off", "0")


def _git_must_write(settings: bytes) -> bool:
    """Whether the settings ``git config --get-regexp _GIT_WRITES_WHEN`` printed ask for more than
    ``_ObjectStore`` does. What is not plainly "no" counts as a yes: git then writes the commit itself, which
    is slower, never wrong."""
    for line in settings.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(" ")
        text = value.strip().lower()
        if key == "core.sharedrepository" and not _is_umask(text):
            return True
        if key in ("core.fsync", "core.fsyncobjectfiles") and text not in _NO:
            return True
        if key == "extensions.compatobjectformat":
            return True
    return False


def _is_umask(text: str) -> bool:
    """Whether a ``core.sharedRepository`` value means "as the umask gives". A key without ``=`` (git reads
    "group") prints as empty, like ``= ""`` (git reads "umask"): counted as shared."""
    if text == "umask" or text in _NO:
        return True
    try:
        return int(text, 8) == 0
    except ValueError:
        return False


class _TreeReader:
    """Tree objects read through a ``Git``'s long-lived ``cat-file``, each parsed once while its ``Git``'s
    ``_ParsedTrees`` keeps it."""

    def __init__(self, git: Git) -> None:
        self._git = git
        self._parsed = git._parsed

    def root(self, commit: str) -> str:
        """The id of ``commit``'s tree."""
        tree = self._parsed.root(commit)
        if tree is None:
            tree = self._git._keep_commit(self._git._commit(commit))[0]
        return tree

    def entries(self, tree: str) -> dict[str, tuple[str, str]]:
        """Name -> ``(mode, object id)`` of ``tree``'s entries."""
        entries = self._parsed.tree(tree)
        if entries is None:
            entries = self._keep(tree, self._git.read_object(tree))
        return entries

    def prefetch(self, trees: Iterable[str]) -> None:
        """Read those of ``trees`` not kept yet, ``PREFETCH`` to a round trip (the trees of one level of a
        walk), so that ``entries`` finds them kept."""
        missing = list(dict.fromkeys(tree for tree in trees if not self._parsed.has_tree(tree)))
        for start in range(0, len(missing), PREFETCH):
            chunk = missing[start : start + PREFETCH]
            for tree, found in zip(chunk, self._git.read_objects(chunk), strict=True):
                self._keep(tree, found)

    def _keep(self, tree: str, found: StoredObject | None) -> dict[str, tuple[str, str]]:
        if found is None or found.kind != "tree":
            raise GitError(("cat-file", tree), 1, f"{tree} is not a tree")
        return self._parsed.keep_tree(tree, found.content)


class _ParsedTrees:
    """Trees and commits' tree ids by object id, shared by every call of one ``Git``.

    Objects never change, so a tree that every branch of a target reads (the target's own) is read from
    git once per process instead of once per branch, and a branch tip read once (``resolve_ref``) is not
    read again for its tree or parents. Bounded, the least recently used dropped first: trees of at most
    ``ENTRIES`` entries in all are kept as git stores them (about 45 bytes an entry), those of the last
    ``PARSED`` entries parsed as well (about 230 bytes an entry: names, modes and ids as Python objects; a
    kept tree asked for again is parsed again), and at most ``ROOTS`` commits. Measured: about 1 MB less in
    each worker at 3,000 branches than with all ``ENTRIES`` parsed; on git/git's history the same wall time.
    """

    ENTRIES = 8_000
    PARSED = 2_000
    ROOTS = 1_024

    def __init__(self) -> None:
        self._stored: OrderedDict[str, tuple[bytes, int]] = OrderedDict()  # the tree object, its entry count
        self._trees: OrderedDict[str, dict[str, tuple[str, str]]] = OrderedDict()
        self._commits: OrderedDict[str, tuple[str, tuple[str, ...]]] = OrderedDict()  # tree, parents
        self._stored_size = 0
        self._parsed_size = 0
        self._lock = threading.Lock()

    def has_tree(self, oid: str) -> bool:
        with self._lock:
            return oid in self._trees or oid in self._stored

    def tree(self, oid: str) -> dict[str, tuple[str, str]] | None:
        with self._lock:
            if oid in self._stored:
                self._stored.move_to_end(oid)
            entries = self._trees.get(oid)
            if entries is not None:
                self._trees.move_to_end(oid)
                return entries
            stored = self._stored.get(oid)
        if stored is None:
            return None
        entries = _parse_tree(stored[0], len(oid) // 2)
        with self._lock:
            self._keep_parsed(oid, entries)
        return entries

    def keep_tree(self, oid: str, content: bytes) -> dict[str, tuple[str, str]]:
        """Keep the tree object ``content`` of ``oid``; its entries."""
        entries = _parse_tree(content, len(oid) // 2)
        with self._lock:
            if oid not in self._stored:
                self._stored[oid] = (content, len(entries))
                self._stored_size += len(entries)
            while self._stored_size > self.ENTRIES and len(self._stored) > 1:
                self._stored_size -= self._stored.popitem(last=False)[1][1]
            self._keep_parsed(oid, entries)
        return entries

    def _keep_parsed(self, oid: str, entries: dict[str, tuple[str, str]]) -> None:
        if oid not in self._trees:
            self._trees[oid] = entries
            self._parsed_size += len(entries)
        while self._parsed_size > self.PARSED and len(self._trees) > 1:
            self._parsed_size -= len(self._trees.popitem(last=False)[1])

    def root(self, commit: str) -> str | None:
        kept = self._commit(commit)
        return kept[0] if kept is not None else None

    def parents(self, commit: str) -> tuple[str, ...] | None:
        kept = self._commit(commit)
        return kept[1] if kept is not None else None

    def _commit(self, commit: str) -> tuple[str, tuple[str, ...]] | None:
        with self._lock:
            kept = self._commits.get(commit)
            if kept is not None:
                self._commits.move_to_end(commit)
            return kept

    def keep_commit(self, commit: str, tree: str, parents: tuple[str, ...]) -> str:
        with self._lock:
            self._commits[commit] = (tree, parents)
            if len(self._commits) > self.ROOTS:
                self._commits.popitem(last=False)
        return tree


class _Reader:
    """Reads a process's stdout with a deadline, through our own buffer and the helper's selector."""

    def __init__(
        self, process: subprocess.Popen[bytes], buffer: bytearray, selector: selectors.BaseSelector, deadline: float
    ) -> None:
        assert process.stdout is not None
        self._fd = process.stdout.fileno()
        self._buffer = buffer
        self._selector = selector
        self._deadline = deadline

    def _fill(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0 or not self._selector.select(remaining):
            raise TimeoutError
        chunk = os.read(self._fd, 1 << 16)
        if not chunk:
            raise EOFError
        self._buffer.extend(chunk)

    def read_until(self, marker: bytes) -> bytes:
        start = 0
        while (end := self._buffer.find(marker, start)) < 0:
            start = max(0, len(self._buffer) - len(marker) + 1)
            self._fill()
        end += len(marker)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data


class _Helpers:
    """Long-lived git processes of one kind, as many as requests were ever in flight at once (one per thread
    that asks while the others are busy): threads of one process do not queue on a single helper. A free one
    is reused (the most recently used first); ``close`` stops them all. With a ``lifetime``, each helper ends
    after that many requests and the next one starts a fresh process."""

    def __init__(self, git: Git, args: tuple[str, ...], *, lifetime: int | None = None) -> None:
        self._git = git
        self._args = args
        self._lifetime = lifetime
        self._helpers: list[_Persistent] = []  # all of them, started or not
        self._free: list[_Persistent] = []
        self._lock = threading.Lock()

    def request(self, payload: bytes, parse: Callable[[_Reader], T]) -> T:
        with self._lock:
            if not self._free:
                self._helpers.append(_Persistent(self._git, self._args, lifetime=self._lifetime))
                self._free.append(self._helpers[-1])
            helper = self._free.pop()
        try:
            return helper.request(payload, parse)
        finally:
            with self._lock:
                self._free.append(helper)

    def close(self) -> None:
        with self._lock:
            helpers = list(self._helpers)
        for helper in helpers:
            helper.close()


class _Persistent:
    """A long-lived git process spoken to line by line (``cat-file --batch``, ``update-ref --stdin``).

    Started on first use. Any failure inside a request (timeout, interrupt, the process dying) kills it, so
    the next request starts a fresh one instead of reading a half-finished answer. After ``lifetime``
    requests it ends gracefully, and the next request starts a fresh one too.
    """

    def __init__(self, git: Git, args: tuple[str, ...], *, lifetime: int | None = None) -> None:
        self._git = git
        self._args = args
        self._lifetime = lifetime
        self._served = 0  # requests answered by the current process
        self._process: subprocess.Popen[bytes] | None = None
        self._selector: selectors.BaseSelector | None = None  # waits for the process's stdout
        self._stderr: IO[bytes] | None = None
        self._buffer = bytearray()
        self._lock = threading.Lock()

    def request(self, payload: bytes, parse: Callable[[_Reader], T]) -> T:
        with self._lock, self._git.limiter.slot():
            process = self._ensure()
            assert process.stdin is not None
            assert self._selector is not None
            try:
                process.stdin.write(payload)
                process.stdin.flush()
                answer = parse(_Reader(process, self._buffer, self._selector, time.monotonic() + self._git.timeout))
            except TimeoutError:
                self._stop()
                raise GitTimeout(self._args, self._git.timeout) from None
            except (EOFError, BrokenPipeError):
                message = self._error_output()
                self._stop()
                raise GitError(self._args, 128, message or "helper process ended unexpectedly") from None
            except BaseException:
                self._stop(graceful=True)
                raise
            self._served += 1
            if self._lifetime is not None and self._served >= self._lifetime:
                self._stop(graceful=True)
            return answer

    def close(self) -> None:
        with self._lock:
            self._stop(graceful=True)

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._process is None or self._process.poll() is not None:
            self._stop()
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
            try:
                self._process = subprocess.Popen(
                    (*self._git._base, *_HELPER_OPTIONS, *self._args),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=self._stderr,
                    cwd=self._git.location.run_dir,
                    env=self._git.env,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise _not_started(self._args, self._git.location.run_dir) from None
            assert self._process.stdout is not None
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._process.stdout, selectors.EVENT_READ)
        return self._process

    def _error_output(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace").strip()

    def _stop(self, graceful: bool = False) -> None:
        """End the helper. Gracefully: close its input and let git finish what it read (an ``update-ref``
        commits or aborts its transaction and removes its lock files) before killing it."""
        if self._process is not None:
            if graceful and self._process.poll() is None and self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._process.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=2)
            kill_group(self._process)
            self._process = None
        self._served = 0
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._buffer.clear()


def _read_batch_object(reader: _Reader) -> StoredObject | None:
    header = reader.read_until(b"\n").decode("utf-8", "replace").split()
    if len(header) < 3 or header[-1] == "missing":
        return None
    content = reader.read_exact(int(header[2]) + 1)
    return StoredObject(header[0], header[1], content[:-1])


def _parse_push(out: bytes) -> dict[str, PushedRef]:
    """``git push --porcelain``: ``<flag>\\t<from>:<to>\\t<summary>`` per ref, between ``To ...`` and ``Done``."""
    answers = {}
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and len(fields[0]) == 1 and ":" in fields[1]:
            ref = fields[1].rsplit(":", 1)[1]
            answers[ref] = PushedRef(ref, fields[0], fields[2])
    return answers


# The conflicts for which git records one side's file under a temporary name, ``<path>~<commit>``.
_SIDE_MOVED_ASIDE = frozenset({"CONFLICT (file/directory)", "CONFLICT (distinct modes)"})


def _merge_at(fields: Sequence[bytes], index: int, *, conflicted: bool) -> tuple[MergeTree, int]:
    """One merge of ``merge-tree --write-tree -z --name-only`` output split at NULs, from ``fields[index]``:
    the tree, then (conflicted) the paths, an empty field and the typed messages. Also the index after it."""
    tree = fields[index].decode()
    index += 1
    if not conflicted:
        return MergeTree(tree, ()), index
    listed = []
    while index < len(fields) and fields[index]:
        listed.append(fields[index].decode("utf-8", "surrogateescape"))
        index += 1
    kinds, moved, index = _conflict_kinds(fields, index + 1)
    paths = dict.fromkeys(moved.get(path, path) for path in listed)
    return MergeTree(tree, tuple(Conflict(path, kinds.get(path, "contents")) for path in paths)), index


def _conflict_kinds(fields: Sequence[bytes], index: int) -> tuple[dict[str, str], dict[str, str], int]:
    """Map each path to git's conflict type from the ``-z`` informational messages starting at
    ``fields[index]``; also the temporary names git moved a side's file to, to their real paths (a
    file/directory conflict lists ``d~<commit>``, a path neither side has, for ``d``; one of distinct types,
    ``distinct modes`` such as a file against a symlink, ``f~<commit>`` for ``f``), and the index of the first
    field after the messages."""
    kinds: dict[str, str] = {}
    moved: dict[str, str] = {}
    while index < len(fields) and fields[index].isdigit():
        count = int(fields[index])
        paths = [field.decode("utf-8", "surrogateescape") for field in fields[index + 1 : index + 1 + count]]
        kind = fields[index + 1 + count].decode("utf-8", "replace") if index + 1 + count < len(fields) else ""
        index += count + 3
        if kind.startswith("CONFLICT (") and kind.endswith(")"):
            for path in paths:
                kinds.setdefault(path, kind[len("CONFLICT (") : -1])
        if kind in _SIDE_MOVED_ASIDE:
            moved.update((path, real) for path in paths for real in paths if path.startswith(f"{real}~"))
    return kinds, moved, index


def _parse_diff(raw: bytes) -> tuple[FileChange, ...]:
    """Parse ``diff-tree -z --raw --numstat`` output: raw records first, then numstat records."""
    fields = raw.decode("utf-8", "surrogateescape").split("\0")
    raw_records: dict[str, tuple[str, str | None, str | None, str, str | None]] = {}
    index = 0
    while index < len(fields) and fields[index].startswith(":"):
        _, new_mode, old_blob, new_blob, status = fields[index][1:].split(" ")
        source = fields[index + 1] if status[0] == "R" else None  # a rename: both paths follow, the new one last
        index += 3 if source is not None else 2
        raw_records[fields[index - 1]] = (status[0], _unless_zero(old_blob), _unless_zero(new_blob), new_mode, source)
    counts: dict[str, tuple[int | None, int | None]] = {}
    while index < len(fields):
        record = fields[index]
        index += 1
        if record:
            added, deleted, name = record.split("\t", 2)
            if not name:  # a rename: its two paths follow, the new one last
                name, index = fields[index + 1], index + 2
            counts[name] = (None if added == "-" else int(added), None if deleted == "-" else int(deleted))
    return tuple(
        FileChange(path, status, *counts.get(path, (None, None)), old, new, new_mode, source)
        for path, (status, old, new, new_mode, source) in raw_records.items()
    )


_MODES: dict[bytes, str] = {}  # a tree entry's mode as stored -> ``_canonical_mode`` (a handful in any repository)
# A tree object is entries ``<octal mode> <name>\0<raw id>`` back to back (ids of 20 bytes, or 32 for sha256).
_TREE_ENTRY = {size: re.compile(rb"([0-7]+) ([^\0]*)\0(.{%d})" % size, re.DOTALL) for size in (20, 32)}
_TREE = {size: re.compile(rb"(?:[0-7]+ [^\0]*\0.{%d})*" % size, re.DOTALL) for size in (20, 32)}


def _parse_tree(content: bytes, oid_size: int) -> dict[str, tuple[str, str]]:
    """A tree object's entries: name -> ``(mode, object id)``. Split by a regular expression, checked whole
    first: 0.6 of the time of a loop over the entries (a 561-entry tree of git/git: 0.27 ms against 0.43),
    and a kept tree may be parsed again (``_ParsedTrees``)."""
    if _TREE[oid_size].fullmatch(content) is None:
        raise ValueError("not a tree object: its entries do not follow each other")
    modes = _MODES
    return {
        name.decode("utf-8", "surrogateescape"): (
            modes.get(mode) or modes.setdefault(mode, _canonical_mode(mode)),
            oid.hex(),
        )
        for mode, name, oid in _TREE_ENTRY[oid_size].findall(content)
    }


def _canonical_mode(raw: bytes) -> str:
    """A tree entry's mode as git reports it (``diff-tree``, ``ls-tree``): old trees may hold ``040000`` or
    ``100664``, which git reads as ``40000`` and ``100644``."""
    mode = int(raw, 8)
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFREG:
        return "100755" if mode & 0o100 else "100644"
    return {stat.S_IFDIR: _TREE_MODE, stat.S_IFLNK: "120000"}.get(kind, _GITLINK_MODE)


def _commit_info(fields: bytes) -> CommitInfo:
    """A commit from ``_COMMIT_FORMAT``'s output: lines, since neither an author name nor a subject (its first
    paragraph, joined into one line) can hold a newline, nor a NUL; any other byte, ``\\x1e`` included, is data."""
    oid, author, subject = fields.decode("utf-8", "replace").split("\n", 2)
    return CommitInfo(oid, author, subject)


def _runs_of(args: Sequence[str], limit: int) -> Iterator[list[str]]:
    """``args`` in order, cut into runs of at most ``limit`` characters (one longer argument alone): one call's
    arguments each, well below the system's limit on a command line."""
    run: list[str] = []
    size = 0
    for arg in args:
        if run and size + len(arg) > limit:
            yield run
            run, size = [], 0
        run.append(arg)
        size += len(arg)
    if run:
        yield run


def _literal(path: str) -> str:
    """A pathspec that matches ``path`` only: no glob or magic in a file name is interpreted."""
    return f":(literal){path}"


def _quoted_path(path: str) -> str:
    """``path`` as a C-quoted entry of git's alternates list (a colon or newline in it stays part of it)."""
    escaped = "".join(
        "\\" + chr(byte) if byte in b'"\\' else chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03o}"
        for byte in path.encode("utf-8", "surrogateescape")
    )
    return f'"{escaped}"'


def _unless_zero(oid: str) -> str | None:
    return None if not oid.strip("0") else oid
