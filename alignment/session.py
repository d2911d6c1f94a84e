"""A run's setup: what is decided once, by the controller, before any branch starts.

``set_up_run`` discovers the repository, takes one ``Snapshot`` (every target pinned to one commit for the
whole run, branch tips, and which branches are already up to date or only behind, in a few batched git
calls), and creates the run folder and a scratch directory. The setup is JSON, so the pytest controller
hands it to xdist workers unchanged; ``pipeline.Runtime`` is what each process builds from it.
"""

from __future__ import annotations

import difflib
import logging
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import msgspec

from alignment import housekeeping
from alignment.clones import Clone, WorkerClones, clones_for, fetch_run_refs
from alignment.config import Settings
from alignment.errors import FileProblem, GitError, InputError, RepositoryError, counted
from alignment.git import Git, RepoLocation, branch_ref, driver_files, remove_driver_files
from alignment.inputs import BranchInput
from alignment.journal import MoveJournal, PutBack
from alignment.model import Action
from alignment.remote import check_remote, fetch_listed, tracking_root
from alignment.runs import RunFolder, RunState, list_runs, new_run_id
from alignment.scratch import create_scratch, is_alive, release

log = logging.getLogger(__name__)


FIRST_CLONE_FETCH_SECONDS = 3600.0  # a worker's new clone fetches all history, over a network


@dataclass(frozen=True)
class Snapshot:
    """The repository as the run found it. Targets stay pinned to these commits for the whole run."""

    target_commits: Mapping[str, str]
    tips: Mapping[str, str]
    up_to_date: frozenset[str]
    behind: frozenset[str]
    backups: frozenset[str] | None = None  # local branches named like a backup; None when not read
    not_commits: Mapping[str, str] = field(default_factory=dict)  # listed branches whose ref is no commit: its kind

    def relation(self, branch: str) -> Action:
        """How ``branch`` (at its snapshot tip) relates to its target: up to date, behind, or diverged."""
        if branch in self.up_to_date:
            return Action.UP_TO_DATE
        return Action.FAST_FORWARD if branch in self.behind else Action.MERGE


def take_snapshot(
    git: Git,
    branches: BranchInput,
    require_targets: bool = True,
    remote: str | None = None,
    backup_prefix: str | None = None,
) -> Snapshot:
    """Tips, pinned targets and ancestry in 1 + 2 per target git calls, each reading only that target's listed
    branches, not every ref (backups included), when it has at most ``NAMED_REFS_AT_MOST`` of them (more calls
    past ``PATHSPEC_BYTES`` of their names); a target with more reads every ref under the root, which costs less.

    ``require_targets``: a target that is not a branch is an ``InputError`` (else its branches fail alone).
    ``remote``: read the branches fetched from that remote (``remote.tracking_root``), not the local ones.
    ``backup_prefix``: also keep the local branches whose names start with it, so that a backup name
    absent from them is created without being read first (``backup.create_backup``).
    """
    root = "refs/heads/" if remote is None else tracking_root(remote)
    objects = git.branch_objects(root)
    all_tips = {name: oid for name, (kind, oid) in objects.items() if kind == "commit"}
    if require_targets:
        _require_targets(git, branches, objects, remote)
    listed = {spec.name for spec in branches.branches}
    targets = {target: all_tips[target] for target in branches.targets if target in all_tips}
    up_to_date: set[str] = set()
    behind: set[str] = set()
    for group in branches.groups:
        commit = targets.get(group.target)
        if commit is None:
            continue
        names = {spec.name for spec in group.branches} & all_tips.keys()
        containing = git.branches_containing(commit, names, root)
        up_to_date |= containing
        behind |= git.branches_merged_into(commit, names, root) - containing
    tips = {name: oid for name, oid in all_tips.items() if name in listed}
    not_commits = {name: kind for name, (kind, _) in objects.items() if name in listed and name not in tips}
    backups = None
    if backup_prefix is not None and remote is None:
        backups = frozenset(name for name in all_tips if name.startswith(backup_prefix))
    return Snapshot(targets, tips, frozenset(up_to_date), frozenset(behind), backups, not_commits)


def _wrote_missing_commit_graph(git: Git) -> bool:
    """Write git's commit-graph cache when there is none; whether it was written. Only a cache: a write that
    fails (its lock held by another run or by ``git gc`` / ``git maintenance``, a full disk, a timeout) is noted
    and the run goes on without it."""
    if git.has_commit_graph():
        return False
    try:
        git.write_commit_graph()
    except GitError as error:
        log.info("commit-graph cache not written, the run goes on without it: %s", error)
        return False
    return True


def _require_targets(
    git: Git, branches: BranchInput, objects: Mapping[str, tuple[str, str]], remote: str | None
) -> None:
    """A target that is not a branch (of the repository, or of ``remote``), or a branch that points at no
    commit, is a problem of the input: refuse the run before anything runs.

    The message names the target, the closest existing branch, and ``<remote>/<target>`` when that exists
    (with ``remote``: that the local branch of that name is not used); or the kind of object it points at.
    """
    tips = {name: oid for name, (kind, oid) in objects.items() if kind == "commit"}
    missing = [target for target in branches.targets if target not in tips]
    if not missing:
        return
    if remote is None:  # a remote-tracking branch of that name may be what was meant
        where, tracking, local = str(git.location.git_dir), git.remote_branches(), frozenset[str]()
    else:  # a local branch of that name may be what was meant
        where, tracking, local = f"remote {remote!r}", frozenset(), frozenset(git.branch_tips())
    problems = []
    for target in missing:
        first = next(spec.index for spec in branches.branches if spec.target == target)
        if target in objects:
            kind = objects[target][0]
            problems.append(f"branches[{first}].assigned_target: {target!r} of {where} points at a {kind}, no commit")
            continue
        problem = f"branches[{first}].assigned_target: target {target!r} is not a branch of {where}"
        close = difflib.get_close_matches(target, list(tips), n=1)
        if close:
            problem += f" (closest existing branch: {close[0]!r})"
        if target in local:
            problem += f"; the local branch {target!r} is not read by a --remote run: push it to {remote!r} first"
        tracked = sorted(name for name in tracking if name.split("/", 1)[1:] == [target])
        if tracked:
            remote_name = tracked[0].split("/", 1)[0]
            problem += f"; {tracked[0]!r} exists: pass --remote {remote_name} to align onto the remote's branches"
        problems.append(problem)
    raise InputError.of_all(branches.source, problems)


@dataclass(frozen=True)
class RunSetup:
    """Everything every process of a run needs, decided once by the controller."""

    run_id: str
    started: float
    settings: Settings
    location: RepoLocation
    branches: BranchInput
    snapshot: Snapshot
    folder: RunFolder
    scratch_dir: Path
    housekeeping: tuple[str, ...] = ()  # the set-up's notes for the user: earlier runs that did not finish, unused
    # targets, branches at no commit, and with ``tidy`` the cleanup's (else ``tidy_repository`` returns those)
    predict: bool = False
    clones: WorkerClones | None = None  # --worker-clones: each xdist worker aligns in a clone of its own
    driver_files: frozenset[str] | None = None  # merge drivers' files in ``location.run_dir`` at set-up, where the
    # repository configures a merge driver (``killed_merges``); None where it configures none

    @property
    def stop_flag(self) -> Path:
        """Exists once the run is stopped (the circuit breaker tripped, or Ctrl-C came), its text saying why:
        workers check it before starting a branch."""
        return self.scratch_dir / "stopped"

    @property
    def killed_merges(self) -> Path | None:
        """Exists once a merge of the run was killed (``Git(killed_merges=...)``): its drivers' files may be left
        in the user's worktree, which the run's end removes (``discard_scratch``). None where the repository
        configures no merge driver, or where the workers merge in clones of their own (not in the worktree)."""
        return self.scratch_dir / "merge-killed" if self.driver_files is not None and self.clones is None else None

    @property
    def remote(self) -> str | None:
        """The remote the branches live on (``--remote``), or None for local branches."""
        return self.settings.remote

    def tip_ref(self, branch: str) -> str:
        """The ref the run reads ``branch`` from: the local branch, or its copy fetched from the remote."""
        return branch_ref(branch) if self.remote is None else tracking_root(self.remote) + branch

    @property
    def breaker_settings(self) -> Settings:
        """The settings the circuit breaker follows: a plan never stops early, it predicts every branch."""
        return msgspec.structs.replace(self.settings, enable_circuit_breaker=False) if self.predict else self.settings

    def to_json(self) -> str:
        """The setup as JSON text: how it reaches xdist workers (execnet carries text, not objects)."""
        return msgspec.json.encode(self, enc_hook=_encode_path).decode()

    @classmethod
    def from_json(cls, text: str) -> RunSetup:
        """Inverse of ``to_json``; the controller validated the input and settings already."""
        return msgspec.json.decode(text, type=cls, dec_hook=_decode_path)

    def with_clones(self, directory: str) -> RunSetup:
        """The controller's side of ``--worker-clones``: this setup with its workers' clones under ``directory``."""
        assert self.remote is not None
        return replace(self, clones=clones_for(self.location, self.remote, directory))

    def in_clone(self, clone: Clone) -> RunSetup:
        """A worker's side of ``--worker-clones``: fetch the run's branches and targets into ``clone`` (a target
        the remote moved since, at its pinned commit) and return the setup that aligns there."""
        assert self.remote is not None
        names = [spec.name for spec in self.branches.branches] + list(self.branches.targets)
        timeout = self.settings.integration_timeout_seconds
        if clone.created:  # the first fetch into a new clone copies the whole history
            timeout = max(timeout, FIRST_CLONE_FETCH_SECONDS)
        fetch_run_refs(clone, self.remote, names, self.snapshot.target_commits, timeout)
        return replace(self, location=clone.location)

    def discard_scratch(self) -> None:
        """End of the run (owner only), when none of its merges runs any more: if one was killed, remove the
        merge drivers' files that appeared in the worktree since the set-up (``git.remove_driver_files``);
        release the scratch directory and delete it."""
        if self.driver_files is not None and self.killed_merges is not None and self.killed_merges.exists():
            remove_driver_files(self.location.run_dir, self.driver_files)
        release(self.scratch_dir)
        shutil.rmtree(self.scratch_dir, ignore_errors=True)


def _encode_path(value: object) -> str:
    """msgspec's hook for the one type it does not know: a ``Path`` travels as its text."""
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(type(value))


def _decode_path(kind: type, value: object) -> Path:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(kind)


def set_up_run(
    settings: Settings,
    branches: BranchInput,
    repo_path: str | Path,
    *,
    reports_dir: str | Path | None = None,
    predict: bool = False,
    require_targets: bool = True,
    record: bool = True,
    tidy: bool = True,
) -> RunSetup:
    """Discover the repository, snapshot it and create the run folder. Moves no ref.

    ``predict``: the run only predicts (``--plan``): no backup, no worktree, no ref moves.
    ``require_targets``: refuse the run when a target does not exist (the single-branch entry point instead
    reports ``target_not_found`` in the branch's result, as the spec's error codes say).
    ``record``: False when only collecting (``pytest --collect-only``): no run folder, no run record.
    ``tidy``: False to leave the repository as it is (``tidy_repository`` does that part later, once the pytest
    session is known to run): no cleanup after dead runs, no commit-graph cache.
    With ``settings.remote``, the listed branches and targets are fetched first (``remote.fetch_listed``)
    and the run reads those copies; a plan fetches too, but never pushes.
    """
    location = RepoLocation.discover(repo_path)
    started = time.time()
    run_id = new_run_id(started)
    folder = RunFolder(Path(reports_dir or settings.reports_dir).resolve(), run_id)
    folder.check_publishable(predict=predict)
    git = Git(location, timeout=settings.branch_alignment_timeout_seconds)
    try:
        if git.is_shallow():
            raise RepositoryError(
                f"{repo_path}: a shallow clone; merges need the whole history (run `git fetch --unshallow` first)"
            )
        identity = git.identity_problem()
        if identity is not None:
            raise RepositoryError(
                f"{repo_path}: git cannot author merge commits here ({identity}); set user.name and user.email"
            )
        if settings.remote is not None:
            check_remote(git, settings.remote)
            names = [spec.name for spec in branches.branches] + list(branches.targets)
            missing = fetch_listed(git, settings.remote, names, timeout=settings.integration_timeout_seconds)
            log.info(
                "fetched %s from '%s'; missing there: %s", counted(len(names), "ref"), settings.remote, sorted(missing)
            )
        snapshot = take_snapshot(git, branches, require_targets, settings.remote, settings.backup_branch_prefix)
        drivers = driver_files(location.run_dir) if git.merge_drivers_configured() else None
        # once the input's targets are known to exist, and after the fetch, so the commit-graph covers it
        notes = (_tidy(git, settings) if tidy else ()) + unfinished_runs(folder.reports_dir)
    finally:
        git.close()
    if branches.shard is None:  # a shard holds only some of the input's targets
        notes += settings.unused_targets(branches.targets)
    notes += tuple(
        f"branch {name!r} points at a {kind}, no commit: it is not aligned (branch_not_found)"
        for name, kind in snapshot.not_commits.items()
    )
    if record:
        folder.make()
    scratch = create_scratch(run_id)
    if record:
        folder.write_record(
            {
                "run_id": run_id,
                "repository": str(location.common_dir),  # not a linked worktree's git dir: undo outlives the worktree
                "run_dir": str(location.run_dir),  # where undo works while it is there: as the run saw the repository
                "started": started,
                "input": branches.source,
                "scratch_dir": str(scratch),
                "predict": predict,
            }
        )
    log.info(
        "run %s: %s over %s in %s",
        run_id,
        counted(len(branches.branches), "branch", "branches"),
        counted(len(branches.targets), "target"),
        location.git_dir,
    )
    return RunSetup(
        run_id, started, settings, location, branches, snapshot, folder, scratch, notes, predict, driver_files=drivers
    )


def tidy_repository(setup: RunSetup) -> tuple[str, ...]:
    """What a set-up made with ``tidy=False`` left out: clean up after dead runs (``housekeeping.sweep``) and
    write git's commit-graph cache when missing (``settings.write_commit_graph``; logged, a cache is no news).
    The sweep's notes. The pytest front end calls it once pytest runs the session: one it refuses after the
    set-up (a bad ``--log-level``, ``-k`` or path) or that only shows changes nothing in the repository."""
    git = Git(setup.location, timeout=setup.settings.branch_alignment_timeout_seconds)
    try:
        return _tidy(git, setup.settings)
    finally:
        git.close()


def _tidy(git: Git, settings: Settings) -> tuple[str, ...]:
    """Clean up after dead runs and write the missing commit-graph cache; the cleanup's notes."""
    notes = housekeeping.sweep(git)
    if settings.write_commit_graph and _wrote_missing_commit_graph(git):
        log.info("wrote git's commit-graph cache (it speeds up every merge; it changes no ref)")
    return notes


def unfinished_runs(reports_dir: Path) -> tuple[str, ...]:
    """Earlier runs that died before writing their results, and how many moves each journaled. A plan that died
    is not one of them: it moved nothing, there is nothing to undo."""
    notes = []
    for run in list_runs(reports_dir):
        if run.state is not RunState.UNFINISHED:
            continue
        try:
            record = run.folder.record()
        except FileProblem as error:  # one unreadable record (a power cut) blocks no later run
            notes.append(f"run {run.run_id} skipped: {error}{_undo_hint(run.folder)}")
            continue
        if record.get("predict") is True or is_alive(Path(record["scratch_dir"])):
            continue
        notes.append(f"run {run.run_id} did not finish; {_moved_now(run.folder)}")
    return tuple(notes)


def _moved_now(folder: RunFolder) -> str:
    """What a run that died has moved now, as ``alignment runs`` counts it: an undo hint only when some branch
    is still moved (a move its own teardown put back counts as none)."""
    moves = moves_by_put_back(folder)
    if moves[None]:
        return (
            f"it moved {counted(moves[None], 'branch', 'branches')} to checked merges "
            f"(`alignment undo {folder.run_id}` puts them back)"
        )
    if moves[PutBack.UNDO]:
        return f"it moved {counted(moves[PutBack.UNDO], 'branch', 'branches')}, put back since by `alignment undo`"
    return "it moved nothing"


def _undo_hint(folder: RunFolder) -> str:
    """How to undo the moves a run whose record is unreadable journaled, if it journaled any."""
    moved = moves_made(folder)
    if not moved:
        return ""
    return (
        f"; it moved {counted(moved, 'branch', 'branches')} (`alignment undo {folder.run_id} --repo PATH` "
        "puts them back)"
    )


def moves_made(folder: RunFolder) -> int:
    """How many branches the run of ``folder`` moved, or may have moved, and are still moved (its journal less
    the rejected moves and those put back since)."""
    return moves_by_put_back(folder)[None]


def moves_by_put_back(folder: RunFolder) -> Counter[PutBack | None]:
    """The moves of the run of ``folder`` (rejected ones left out) by who put them back: None for those still
    moved, ``PutBack.RUN`` and ``PutBack.UNDO`` for the others; the journal is read once."""
    return Counter(move.put_back for move in MoveJournal(folder.moves_dir).moves())
