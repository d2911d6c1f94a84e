"""The pytest front end: ``pytest alignment/ -n 4 --input categorized_branches.json --repo PATH``.

Each branch of the input is one test item of ``alignment/test_branches.py`` (id: the branch name; marks:
``xdist_group(<target>)`` and ``target_<target>``). The ``branch_alignment`` fixture prepares the branch
(checks, then the backup) and, in teardown, finishes it: documents a failure, restores anything moved,
removes worktrees, and attaches the result as JSON text to the item's ``user_properties``, which is how it
travels from an xdist worker to the controller. The test body runs the steps integrate -> detect -> document -> move.

Outcomes: passed = ``completed``; failed = ``failed_integration`` / ``failed_error_detection`` with the
spec's ``error_message`` as the failure text; error = ``exception``. Without ``--input`` (or ``--demo``)
this plugin does nothing, and ``pytest`` runs the project's own tests.

``--shard K/N`` collects only part K of N of the input (``alignment.shard``), for a CI matrix whose results
``alignment merge-results`` combines.

``--worker-clones DIR`` (with ``--remote`` and xdist workers, on this machine or others): each worker aligns
in a clone of its own under DIR (``alignment.clones``) and pushes its branches at the end of its session; the
controller still schedules, runs the breaker and writes the report.

``--plan`` runs the same items as a prediction (no backup, no worktree, no ref moves): outcomes are what a
real run would give, the plan goes to ``alignment_plan.json`` / ``.html``, and ``--lf``'s list is left as
the last real run made it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import json
import os
import re
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

import alignment
from alignment.clones import Clone, open_clone
from alignment.config import Settings, check_remote_name, load_settings, repository_to_align
from alignment.document import document_path
from alignment.errors import AlignmentError, StepFailed, UsageProblem, counted
from alignment.git import Git
from alignment.inputs import load_branches
from alignment.journal import MoveJournal
from alignment.logs import run_logging
from alignment.model import BranchResult, BranchSpec, Status
from alignment.names import printable
from alignment.pipeline import BranchAlignment, Runtime
from alignment.registry import Components
from alignment.remote import PushInterrupted, push_branches
from alignment.session import RunSetup, set_up_run
from alignment.shard import ShardSpec
from plugins.handoff import (
    ANY,
    PUSHED_OUTPUT,
    RESULT_PROPERTY,
    SETUP_INPUT,
    TRIED_INPUT,
    laid_out,
    last_tried,
    result_of,
    shares,
    show_only,
    worker_number,
    write_node_map,
)

COLLECTED_MODULE = Path(alignment.__file__).with_name("test_branches.py")
ALIGNMENT_DIR = COLLECTED_MODULE.parent


class RunState:
    """What one process (controller or worker) knows about the run."""

    def __init__(
        self,
        setup: RunSetup,
        worker: str,
        demo_dir: Path | None = None,
        made_dirs: tuple[Path, ...] = (),
        tried: dict[str, int] | None = None,
    ) -> None:
        self.setup = setup
        self.worker = worker
        self.tried = tried  # a worker's ``last_tried``, from the controller (None: this is the controller)
        self.demo_dir = demo_dir
        self.made_dirs = made_dirs  # the reports directories its set-up made, deepest first
        self.branches: list[BranchSpec] | None = None  # what this process will align, in order, once collected
        self.collected = False  # its collection ran to its end (``CollectionEnd``)


class CollectionEnd:
    """Marks a process's collection as ended once every plugin has modified its items. pytest calls
    ``pytest_collection_finish`` in a ``finally``, so also after a Ctrl-C in collection, with the items found so
    far (perhaps none), which must not be written as the run's selection."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self) -> Generator[None, None, None]:
        yield
        self.state.collected = True


STATE = pytest.StashKey[RunState]()
STEP_FAILURE = pytest.StashKey[StepFailed]()  # the step failure behind a branch test's failure
FROZEN = pytest.StashKey[bool]()  # this process moved what lives to the end out of the collector's sight
NO_NAMES: frozenset[str] = frozenset()
# pytest plugins with nothing to do in an alignment run, unregistered from it: hypothesis's imports all of
# hypothesis for its terminal summary, in every process (about 7 MB and 0.15 s each, at the end of a worker's
# session, when the run's memory peaks). pytest's subtests (9.x) keeps an entry for every test in every
# process (it reads its count of failed subtests from a defaultdict): unregistered when the run collects
# nothing but the branches, which have no subtests.
IDLE_PLUGINS = ("hypothesispytest",)
IDLE_WITH_BRANCHES_ONLY = ("subtests",)
# pytest plugins an alignment run cannot do without, by the name ``-p no:NAME`` disables: what to install.
# The JSON report's completion publishes the results; pytest-timeout's mark is each branch's time limit.
REQUIRED_PLUGINS = {"pytest_jsonreport": "pytest-json-report", "timeout": "pytest-timeout"}
# This plugin's options that take a value: flag, ini twin, metavar, help.
VALUE_OPTIONS = (
    ("--input", "alignment_input", "PATH", "categorized_branches.json to align (the spec's input format)"),
    ("--repo", "alignment_repo", "PATH", "the git repository holding the branches (no default)"),
    ("--config", "alignment_config", "PATH", "YAML configuration with an 'orchestration:' block (default: none)"),
    ("--reports-dir", "alignment_reports_dir", "PATH", "where runs write their reports (default: reports)"),
    (
        "--remote",
        "alignment_remote",
        "NAME",
        "the branches live on this remote (config key: remote): fetch them, align, push each with a lease",
    ),
    ("--shard", "alignment_shard", "K/N", "align only part K of N of the input (a CI matrix; see the README)"),
    (
        "--worker-clones",
        "alignment_worker_clones",
        "DIR",
        "with --remote and xdist workers (-n, --tx): each worker aligns and pushes in a clone of its own, "
        "kept in DIR on its machine",
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alignment", "branch alignment: pytest alignment/ --input FILE --repo PATH")
    for flag, ini, metavar, text in VALUE_OPTIONS:
        group.addoption(flag, dest=ini, metavar=metavar, help=f"{text}; ini: {ini}")
        relative = " (relative to the ini file)" if metavar == "PATH" else ""
        parser.addini(ini, f"{text}{relative}", default=None)
    group.addoption(
        "--plan",
        action="store_true",
        dest="alignment_plan_only",
        help="predict every branch's outcome and the conflicts between branches; move nothing",
    )
    group.addoption(
        "--demo",
        action="store_true",
        dest="alignment_demo",
        help="align a generated demo repository with 20 branches over three targets",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.add_cleanup(functools.partial(_thaw, config))  # before pytest's collecting cleanup: runs after it
    config.addinivalue_line("markers", "xdist_group(name): the target a branch is aligned with")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        if SETUP_INPUT not in workerinput:
            return
        setup = RunSetup.from_json(workerinput.pop(SETUP_INPUT))  # read once
        state = RunState(setup, workerinput["workerid"], tried=workerinput.pop(TRIED_INPUT))
        if state.setup.clones is not None:
            state = _in_own_clone(config, state)
    else:
        controller_state = _controller_state(config)
        if controller_state is None:
            return
        state = controller_state
        config.invocation_params = pytest.Config.InvocationParams(
            args=_values_joined(config.invocation_params.args),
            plugins=config.invocation_params.plugins,
            dir=config.invocation_params.dir,
        )
        if state.setup.predict:
            config.pluginmanager.set_blocked("lfplugin")  # a prediction must not change what --lf reruns
        from plugins.controller import AlignmentController  # noqa: PLC0415 - the controlling process only

        controller = AlignmentController(config, state.setup, state.demo_dir, state.made_dirs)
        config.pluginmanager.register(controller, "alignment-controller")
    config.stash[STATE] = state
    config.pluginmanager.register(CollectionEnd(state), "alignment-collection-end")
    config.pluginmanager.register(LeanTerminalStats(config), "alignment-lean-terminal-stats")
    _unregister_idle_plugins(config)
    markers = target_markers(state.setup.branches.file_targets)
    for target in state.setup.branches.targets:
        config.addinivalue_line("markers", f"{markers[target]}: branches aligned with '{target}'")
    if show_only(config):
        # --setup-only as --setup-plan: a branch's fixture checks the branch and creates its backup
        config.option.setupplan = config.option.setupplan or config.option.setuponly
        return  # showing moves nothing and writes no run: no report either
    config.option.json_report = True
    if config.option.showcapture == "all":
        config.option.showcapture = "no"  # each branch's log is in its log file; failures show their message
    if config.option.log_level is None and not config.getini("log_level"):
        config.option.log_level = "WARNING"  # INFO goes to the branch log files, not into every test report
    if config.option.json_report_file == ".report.json":
        config.option.json_report_file = str(state.setup.folder.pytest_report_path)
    if not config.option.json_report_omit:
        # Each branch's log records are in its log file; copied into every test's JSON they cost the workers
        # and the controller memory per branch (about 30 MB at 1,000 branches) and triple the file.
        config.option.json_report_omit = ["log", "keywords"]


def _values_joined(args: Iterable[str]) -> tuple[str, ...]:
    """The command line with this plugin's options written with their values (``--input in.json`` as
    ``--input=in.json``), as xdist hands it to its workers. For a worker that starts in another directory
    (``--tx popen//chdir=DIR``, ssh, socket), xdist rewrites every argument naming an existing path relative to
    its rsync roots, and stops the session with an internal error at one outside them; a flag's value joined
    to it is not a path. A worker reads none of these values: it gets the run's set-up whole."""
    flags = {flag for flag, *_ in VALUE_OPTIONS}
    joined: list[str] = []
    given = iter(args)
    for arg in given:
        if arg == "--":  # the rest are positional
            return (*joined, arg, *given)
        value = next(given, None) if arg in flags else None
        joined.append(arg if value is None else f"{arg}={value}")
    return tuple(joined)


def _unregister_idle_plugins(config: pytest.Config) -> None:
    branches_only = all(_holds_branches(path) for path in _arg_paths(config))
    for name in IDLE_PLUGINS + (IDLE_WITH_BRANCHES_ONLY if branches_only else ()):
        if config.pluginmanager.has_plugin(name):
            config.pluginmanager.unregister(name=name)


def _controller_state(config: pytest.Config) -> RunState | None:
    """Plan the run from the options, or None when no run was asked for. Bad options: ``UsageError``."""
    if config.option.help:
        return None  # the options are shown: no run to set up, nothing to check
    demo = bool(config.getoption("alignment_demo"))
    input_path = _path_option(config, "alignment_input")
    if input_path is None and not demo:
        if _names_the_collected_module(config):
            raise pytest.UsageError("pytest alignment/ needs --input FILE and --repo PATH (or --demo)")
        return None
    for name, package in REQUIRED_PLUGINS.items():
        if not config.pluginmanager.has_plugin(name):
            raise pytest.UsageError(f"an alignment run needs {package}: do not disable it with -p no:{name}")
    try:
        shard = _shard_option(config)
        settings = _settings(config)
        demo_dir = None
        repo: Path | str | None
        if demo:
            from alignment.demo import build_demo, new_demo_dir  # noqa: PLC0415 - only --demo needs it

            demo_dir = new_demo_dir()
            repo, input_path = build_demo(demo_dir)
        else:
            repo = repository_to_align(
                settings, _path_option(config, "alignment_repo"), _path_option(config, "alignment_config")
            )
        if repo is None:
            raise UsageProblem("--repo PATH is required: the repository whose branches to align")
        assert input_path is not None
        clones = _worker_clones_option(config, settings)
        branches = load_branches(input_path, shard)
        Components.from_settings(settings)
        reports_dir = config.invocation_params.dir / (
            _path_option(config, "alignment_reports_dir") or Path(settings.reports_dir)
        )
        runs = reports_dir / "runs"
        made_dirs = tuple(path for path in (runs, *runs.parents) if not os.path.lexists(path))
        setup = set_up_run(
            settings,
            branches,
            repo,
            reports_dir=reports_dir,
            predict=bool(config.getoption("alignment_plan_only")),
            record=show_only(config) is None,
            tidy=False,  # the controller tidies once pytest runs the session (``tidy_repository``)
        )
        if clones is not None:
            setup = setup.with_clones(clones)
    except UsageProblem as error:
        raise pytest.UsageError(printable(str(error))) from None
    except AlignmentError as error:
        raise pytest.UsageError(printable(f"cannot prepare the run: {error}")) from None
    return RunState(setup, "main", demo_dir, made_dirs)


def _settings(config: pytest.Config) -> Settings:
    """``--config``'s settings (the defaults without it) with ``--remote``."""
    settings = load_settings(_path_option(config, "alignment_config"))
    remote = config.getoption("alignment_remote") or config.getini("alignment_remote")
    if remote:
        settings = msgspec.structs.replace(settings, remote=check_remote_name(str(remote), "--remote"))
    return settings


def _path_option(config: pytest.Config, name: str) -> Path | None:
    """An option's path (relative to where pytest was started), else its ini twin (relative to the ini file).

    Normalised (``/proj/../bad/x.json`` is ``/bad/x.json``), so messages show the file the user means.
    """
    value = config.getoption(name)
    if value:
        return Path(os.path.normpath(config.invocation_params.dir / str(value)))
    ini = config.getini(name)
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return Path(os.path.normpath(base / str(ini)))
    return None


def _shard_option(config: pytest.Config) -> ShardSpec | None:
    """``--shard K/N``, else its ini twin; a bad value is a ``UsageProblem`` naming the one given."""
    if config.getoption("alignment_shard"):
        return ShardSpec.parse(config.getoption("alignment_shard"), "--shard")
    ini = config.getini("alignment_shard")
    return ShardSpec.parse(str(ini), "alignment_shard") if ini else None


def _worker_clones_option(config: pytest.Config, settings: Settings) -> str | None:
    """``--worker-clones DIR``, else its ini twin: a directory on each worker's machine (not resolved here).
    Only for a ``--remote`` run spread over xdist workers (``UsageProblem`` otherwise)."""
    given, name = config.getoption("alignment_worker_clones"), "--worker-clones"
    if not given:
        given, name = config.getini("alignment_worker_clones"), "alignment_worker_clones"
    if not given:
        return None
    if settings.remote is None:
        raise UsageProblem(f"{name}: expected --remote NAME too (workers fetch from the remote and push to it)")
    if config.getoption("dist", "no") == "no" or not config.getoption("tx", None):
        raise UsageProblem(f"{name}: expected xdist workers too (-n N, or --tx SPEC with --dist load)")
    if config.getoption("alignment_plan_only"):
        raise UsageProblem(
            f"{name}: --plan cannot use it, the conflict matrix merges the predicted commits, which stay in the "
            f"workers' clones; plan without {name}"
        )
    if settings.remote_backups == "local":
        raise UsageProblem(f"{name}: remote_backups: local would leave each backup in a worker's clone; use remote")
    if settings.push_atomic_per_target:
        raise UsageProblem(
            f"{name}: push_atomic_per_target cannot hold, each worker pushes only its own part of a target"
        )
    return str(given)


def _in_own_clone(config: pytest.Config, state: RunState) -> RunState:
    """A worker of a ``--worker-clones`` run: lock its clone, fetch the run's refs into it, align there, and
    push its branches itself at the end of its session (``WorkerPublisher``)."""
    setup = state.setup
    assert setup.clones is not None
    assert setup.remote is not None
    try:
        clone = open_clone(setup.clones, state.worker, setup.remote)
        try:
            setup = setup.in_clone(clone)
        except BaseException:
            clone.close()
            raise
    except AlignmentError as error:
        config.pluginmanager.register(CloneUnavailable(f"worker {state.worker}: {error}"), "alignment-no-clone")
        return state
    config.pluginmanager.register(WorkerPublisher(config, setup, clone), "alignment-worker-publisher")
    return RunState(setup, state.worker, tried=state.tried)


class CloneUnavailable:
    """A worker whose clone could not be made or fetched: each branch it is given fails before it starts, with
    the reason (an error at configure would only have xdist start a replacement worker, again and again)."""

    def __init__(self, message: str) -> None:
        self.message = printable(message)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        pytest.fail(self.message, pytrace=False)


class WorkerPublisher:
    """A worker in a clone of its own keeps its branches' results and, at the end of its session, pushes them
    (one batch of backups and one of branches per target) and hands the outcomes to the controller in its
    ``workeroutput``: the aligned commits exist only in its clone."""

    def __init__(self, config: pytest.Config, setup: RunSetup, clone: Clone) -> None:
        self.config = config
        self.setup = setup
        self.clone = clone
        self.results: dict[str, BranchResult] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = result_of(report) if report.when == "teardown" else None
        if result is not None:
            self.results[result.branch] = result

    def pytest_sessionfinish(self) -> None:
        started = time.monotonic()
        git = Git(self.setup.location, timeout=self.setup.settings.integration_timeout_seconds)
        try:
            journal = MoveJournal(self.setup.folder.moves_dir)
            pushed = push_branches(git, self.setup.settings, journal, self.results, self.setup.branches.names)
        except PushInterrupted as stopped:  # Ctrl-C reached this worker too: the controller is told what landed
            pushed = stopped.published
        finally:
            git.close()
        output = {"seconds": time.monotonic() - started, "results": [result.to_dict() for result in pushed.values()]}
        self.config.workeroutput[PUSHED_OUTPUT] = json.dumps(output)  # type: ignore[attr-defined]

    def pytest_unconfigure(self) -> None:
        self.clone.close()


def _names_the_collected_module(config: pytest.Config) -> bool:
    return any(_holds_branches(path) for path in _arg_paths(config))


def _holds_branches(path: Path) -> bool:
    """Whether collecting ``path`` collects (only) the branches' module."""
    return path == ALIGNMENT_DIR or ALIGNMENT_DIR in path.parents


def _arg_paths(config: pytest.Config) -> list[Path]:
    """The paths the command line names to collect."""
    return [(config.invocation_params.dir / arg.split("::", 1)[0]).resolve() for arg in config.args]


def target_markers(targets: Iterable[str]) -> dict[str, str]:
    """Each target's marker, usable with ``-m``: ``target_main``, ``target_orchestration_tools`` (non-word
    characters become ``_``). Targets that would share one (``rel-1.0`` and ``rel_1_0``) stay apart: each whose
    name has such characters ends in the first 6 hex digits of its name's SHA-256 (``target_rel_1_0_59a297``),
    or more while that is another target's marker (a target named ``rel_1_0_59a297``). The same whatever the
    input's order, and in every shard of it (``file_targets``)."""
    folded = {target: "target_" + re.sub(r"\W", "_", target) for target in sorted(set(targets))}
    shared = Counter(folded.values())
    markers = {
        target: marker for target, marker in folded.items() if shared[marker] == 1 or not re.search(r"\W", target)
    }
    for target in sorted(folded.keys() - markers.keys()):
        digest = hashlib.sha256(target.encode("utf-8")).hexdigest()
        suffixes = itertools.chain((digest[:digits] for digits in range(6, len(digest) + 1)), itertools.count())
        taken = set(markers.values())
        markers[target] = next(marker for suffix in suffixes if (marker := f"{folded[target]}_{suffix}") not in taken)
    return markers


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path == COLLECTED_MODULE and STATE not in config.stash:
        return True
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per branch. Its marks are built once per target and shared by the target's items: every
    process collects every item, and a few objects per item add up over thousands of branches."""
    if "branch_spec" not in metafunc.fixturenames or STATE not in metafunc.config.stash:
        return
    setup = metafunc.config.stash[STATE].setup
    timeout = pytest.mark.timeout(setup.settings.branch_alignment_timeout_seconds, method="signal", func_only=True)
    params = []
    markers = target_markers(setup.branches.file_targets)
    for group in setup.branches.groups:
        marks = (pytest.mark.xdist_group(group.target), getattr(pytest.mark, markers[group.target]), timeout)
        params += [pytest.param(spec, id=spec.name, marks=marks) for spec in group.branches]
    metafunc.parametrize("branch_spec", params)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Write the node map before xdist's worker reports its collection: the scheduler reads it at once. Not
    after a collection cut short (a Ctrl-C): its items are not the run's selection, and no branch of it runs."""
    state = session.config.stash.get(STATE, None)
    if state is None or not state.collected:
        return
    if session.config.getoption("lf", False):
        session.items[:] = _least_recently_tried_first(session.config, session.items)
    specs = {item.nodeid: _spec_of(item) for item in session.items}
    write_node_map(state.setup, state.worker, {nodeid: spec.name for nodeid, spec in specs.items() if spec})
    state.branches = _own_branches(session.config, state.worker, list(specs.values()), _limit_of(session.config))
    for item in session.items:
        _slim(item)
    _freeze_what_lives_to_the_end(session.config)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    if STATE in session.config.stash:
        _freeze_what_lives_to_the_end(session.config)


def _freeze_what_lives_to_the_end(config: pytest.Config) -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``) until the run ends:
    the run's set-up, and in a process that collects, its items, live to the end, yet every full collection,
    and pytest's own two at the end of every process (which the controller waits for), would walk them all
    again. ``_thaw`` gives them back. Measured (paired runs): 50 branches, wall 0.90-0.94x (about 0.1 s less
    at the end); 3,000 branches, no change beyond the noise (0.93-1.04x); peak memory unchanged."""
    gc.freeze()
    config.stash[FROZEN] = True


def _thaw(config: pytest.Config) -> None:
    """A cleanup registered by a ``tryfirst`` ``pytest_configure``, so before the one of pytest's
    unraisable-exception plugin (which collects); cleanups run last registered first, so this one runs after
    pytest's final collections (one in its ``pytest_unconfigure``, one among the cleanups), and even when a hook
    or cleanup before it raised. What was frozen goes back to the collector."""
    if config.stash.get(FROZEN, False):
        del config.stash[FROZEN]
        gc.unfreeze()


def _least_recently_tried_first(config: pytest.Config, items: list[pytest.Item]) -> list[pytest.Item]:
    """An ``--lf`` rerun's items, the least recently tried first: those never tried, then by the run that
    last tried them, laid out so that under xdist every worker starts with them (``laid_out``; here, after
    ``--lf`` and ``-k`` have chosen the items, which decides each one's share). Each collecting process
    orders them alike. The failures of the last run first would trip the circuit breaker again before any
    other ran, and rerun after rerun would try the same few. A worker's memory of the tries is the
    controller's (``last_tried``)."""
    state = config.stash[STATE]
    tried = last_tried(config, state.setup) if state.tried is None else state.tried
    ranked = sorted(items, key=lambda item: tried.get(item.nodeid, 0))
    return laid_out(ranked, _target_of, _workers(config), _limit_of(config))


def _own_branches(
    config: pytest.Config, worker: str, specs: list[BranchSpec | None], limit_of: Callable[[str], int]
) -> list[BranchSpec]:
    """The collected branches in the order this process is meant to align them: under xdist its own share
    and the branches of targets not dealt out (``ANY``: whichever worker runs one takes them in order), then
    the others' from the end (the order ``scheduler`` hands them out), else all of them (only those ``-k``
    or ``--lf`` kept). Their merges are done ahead in batches, in this order."""
    workers = _workers(config)
    targets = [spec.target if spec else "" for spec in specs]
    number = worker_number(worker, workers)
    meant = list(zip(specs, shares(targets, workers, limit_of), strict=True))
    own = [spec for spec, share in meant if spec and share in (number, ANY)]
    return own + [spec for spec, share in reversed(meant) if spec and share not in (number, ANY)]


def _limit_of(config: pytest.Config) -> Callable[[str], int]:
    """Each target's worker limit, as the scheduler reads it: the shares depend on it."""
    settings = config.stash[STATE].setup.settings
    return lambda target: settings.policy(target).max_workers


def _workers(config: pytest.Config) -> int:
    """How many xdist workers share the run (1 without xdist)."""
    return int(getattr(config, "workerinput", {}).get("workercount", 1))


def _target_of(item: pytest.Item) -> str:
    spec = _spec_of(item)
    return spec.target if spec else ""


def _slim(item: pytest.Item) -> None:
    """Let go of what a collected item holds for nothing until it runs, if it ever does here: every process
    collects every branch and runs only its share. Its fixture request goes (pytest makes a new one when the
    item runs, as it does for an item that runs again), and its empty set of extra ``-k`` names (216 bytes,
    read only to select items, which is done) becomes one shared empty set."""
    if getattr(item, "_request", None):
        item._request = False  # type: ignore[attr-defined]
        item.funcargs = None  # type: ignore[attr-defined]
    if not item.extra_keyword_matches:
        item.extra_keyword_matches = NO_NAMES  # type: ignore[assignment]


def _spec_of(item: pytest.Item) -> BranchSpec | None:
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("branch_spec") if callspec is not None else None
    return spec if isinstance(spec, BranchSpec) else None


@pytest.fixture(scope="session")
def alignment_runtime(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    """This process's runtime: one git door and the three components, for the whole session."""
    state = request.config.stash[STATE]
    settings = state.setup.settings
    logs_dir = state.setup.folder.logs_dir if settings.log_per_branch else None
    with (
        run_logging(settings.log_level, logs_dir),
        Runtime(state.setup, worker=state.worker, branches=state.branches) as runtime,
    ):
        yield runtime


@pytest.fixture
def branch_alignment(request: pytest.FixtureRequest, branch_spec: BranchSpec) -> Iterator[BranchAlignment]:
    """Prepare the branch (checks, backup) for the test's steps; in teardown, finish and record the result.

    The runtime is asked for, not declared: a fixture declaring a session-scoped one leaves a finalizer on it
    each time it runs, with its request, until the session ends (about 0.4 KB per branch)."""
    runtime: Runtime = request.getfixturevalue("alignment_runtime")
    started_at = time.time()  # before the check: a branch that passes it started before any trip was logged
    if runtime.setup.stop_flag.exists():
        pytest.skip(f"not started: {runtime.setup.stop_flag.read_text(encoding='utf-8')}")
    steps = runtime.alignment(branch_spec, started_at)
    try:
        with contextlib.suppress(Exception):  # recorded by the step; the test's first step raises it
            steps.prepare()
        yield steps
    finally:
        result = steps.finish()
        request.node.user_properties.append((RESULT_PROPERTY, json.dumps(result.to_dict())))


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """A step's ``StepFailed``, or the branch's timeout, ends the call without reaching pytest as an exception:
    ``pytest_runtest_makereport`` makes the call's report failed, saying the spec's ``error_message``. Raised
    to pytest, each failed branch had its trace through pluggy filtered and formatted first, only to be
    replaced: about 1.5 ms of a worker's CPU a failed branch, 4-5% of the workers' where one in seven fails.

    The timeout (pytest-timeout's signal) raises at whatever instruction runs when it comes, which can be
    one without a line number (cleanup code of ``with`` and ``try``): pytest cannot format such a trace and
    stops the whole run with an internal error. Its trace is never formatted: the branch's ``timeout``
    result is the report. The alarm is cancelled as soon as the steps return, so it cannot land after them.
    """
    steps = pyfuncitem.funcargs.get("branch_alignment")
    if STATE not in pyfuncitem.config.stash or not isinstance(steps, BranchAlignment):
        return (yield)
    try:
        try:
            return (yield)
        finally:
            _cancel_alarm()
    except StepFailed as error:
        failure = error
    except pytest.fail.Exception:  # pytest-timeout's: the branch ran out of time
        stopped = steps.interrupted()
        if stopped is None:
            return None  # the alarm came after the steps had completed
        failure = stopped
    pyfuncitem.stash[STEP_FAILURE] = failure
    return True  # the call is done: its report is made failed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _outcome_stands(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _outcome_stands(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    return (yield from _outcome_stands(item))


def _outcome_stands(item: pytest.Item) -> Generator[None, None, None]:
    """A branch's outcome is its result: an exception no step could catch (raised in an object's finalizer, such
    as a component's unclosed file: a ``ResourceWarning`` under ``-W error``) does not change it. pytest
    collects such "unraisable" exceptions at the end of each phase and, under ``-W error``, raises them there
    as ``PytestUnraisableExceptionWarning``: the branch, completed and moved, was reported an error. It is
    shown as the warning it is without ``-W error``, in pytest's warnings summary, and the phase goes on."""
    try:
        return (yield)
    except Exception as error:
        raised = tuple(getattr(error, "exceptions", (error,)))  # pytest raises several as an ExceptionGroup
        unraisable = [one for one in raised if isinstance(one, pytest.PytestUnraisableExceptionWarning)]
        if _spec_of(item) is None or len(unraisable) < len(raised):
            raise
    for warning in unraisable:
        _show_warning(item, warning)
    return None


def _show_warning(item: pytest.Item, warning: pytest.PytestUnraisableExceptionWarning) -> None:
    """Record ``warning`` for ``item`` as pytest records a warning its filters let pass (xdist's workers send it
    on to the controller's summary)."""
    cause = warning.__cause__
    text = str(warning) if cause is None else f"{warning}\n{type(cause).__name__}: {cause}"
    shown = pytest.PytestUnraisableExceptionWarning(
        f"{text}\n(raised where no step could catch it: the outcome stands)"
    )
    path, line, _ = item.location
    message = warnings.WarningMessage(shown, type(shown), path, (line or 0) + 1)
    item.ihook.pytest_warning_recorded.call_historic(
        kwargs={"warning_message": message, "when": "runtest", "nodeid": item.nodeid, "location": None}
    )


def _cancel_alarm() -> None:
    """Stop pytest-timeout's pending alarm (signal method) before it can interrupt anything after the steps."""
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A step's failure is reported with the spec's ``error_message`` only; an ``exception`` keeps its trace.
    Only a branch's call can be an ``exception``: another test collected beside the branches fails as usual.

    Nothing per branch outlives its reports unless a report needs it: the item drops the result it attached
    once the teardown report carries it, and its call spec (the parameters, their indices and scopes, read
    only to set the item up: about 800 bytes, and every process collects every branch), and reports carry
    no keywords when the JSON report omits them (nothing else of an alignment run reads them; each is a
    dict per report, kept until the end).
    """
    report = yield
    if STATE not in item.config.stash:
        return report
    if "keywords" in item.config.option.json_report_omit:
        report.keywords = {}
    if call.when == "teardown":
        item.user_properties.clear()
        vars(item).pop("callspec", None)
    if call.when != "call":
        return report
    failure = item.stash.get(STEP_FAILURE, None)
    if failure is not None:
        del item.stash[STEP_FAILURE]  # an item that runs again starts without it
        line = item.config.option.tbstyle == "line"
        _report_step_failure(report, failure, document=_document_shown(item) if line else None)
    elif call.excinfo is not None and isinstance(call.excinfo.value, Exception) and _spec_of(item) is not None:
        report.alignment_status = Status.EXCEPTION.value  # type: ignore[attr-defined]
    return report


def _document_shown(item: pytest.Item) -> str:
    """The change document of ``item``'s branch, where the default ``doc_generator`` writes it (in teardown, for
    a failure), relative to the current directory when inside it: the place ``--tb=line`` names."""
    spec = _spec_of(item)
    assert spec is not None
    path = document_path(item.config.stash[STATE].setup.folder.changes_dir, spec.target, spec.name)
    here = item.config.invocation_params.dir.resolve()
    return str(path.relative_to(here) if path.is_relative_to(here) else path)


def _report_step_failure(report: pytest.TestReport, failure: StepFailed, *, document: str | None) -> None:
    """Make a branch test's call report failed by ``failure``: its text is the ``error_message`` alone (control
    characters escaped), as pytest's ``value`` style shows a failure without a trace, and the summary line
    says it without "Failed: ". Its crash is at the branch's test, not in this module. With ``--tb=line``
    (``document``: the branch's change document) the crash is all that is shown, one line an editor opens:
    ``<change document>:1: <message>``."""
    message = printable(failure.message)
    try:
        raise pytest.fail.Exception(message, pytrace=False)
    except pytest.fail.Exception as shown:  # raised here: a trace of one frame, which is all pytest needs
        longrepr = pytest.ExceptionInfo.from_exception(shown).getrepr(style="value", tbfilter=False)
    if longrepr.reprcrash is not None:  # changed in place: the chain of the longrepr holds it, and xdist sends that
        path, lineno, _ = report.location
        longrepr.reprcrash.path = path if document is None else document
        # the test function's line (pytest's location counts from 0), or the document's first
        longrepr.reprcrash.lineno = (lineno or 0) + 1 if document is None else 1
        longrepr.reprcrash.message = message
    if document is not None:
        longrepr.reprtraceback.reprentries = []  # pytest's line style prints the entries, then the crash's line
    report.outcome = "failed"
    report.longrepr = longrepr
    report.alignment_status = failure.status.value  # type: ignore[attr-defined]


class LeanTerminalStats:
    """Per-branch reports the terminal reporter would keep to the end, and nobody reads, are let go.

    pytest's terminal reporter keeps every report of the session for its summary. Of an alignment run's three
    reports per branch, it reads the failures and the call reports; the passed setup and teardown reports
    (category ``""``) only serve ``-rP``'s captured output, which an alignment run does not show (each
    branch's log is in its own file). Of a passed call report only the count is read, unless something
    reads the reports themselves (``-rp``/``-rP``/``-rA`` list them, ``--durations`` times them, the
    ``times`` console style sums them): it is kept as a ``Counted`` placeholder, one per test file (a
    report is about 1.4 KB). An xdist worker prints no summary at all: it keeps none. A report the
    controller keeps drops pytest-json-report's per-item extras once that plugin has read them (every report
    of an item carries all of them from the worker, about 400 bytes). The ids of the tests it has shown
    progress for, which it only counts, are kept as text (pytest 9.2 keeps each parsed: about 300 bytes).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.categories = None if hasattr(config, "workerinput") else ("",)
        self.counted: dict[str, Counted] = {}  # by test file

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        shown = getattr(terminal, "_progress_nodeids_reported", None)
        if type(shown) is set:
            terminal._progress_nodeids_reported = TextIds(shown)  # type: ignore[union-attr]

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        stats: dict[str, list[Any]] = getattr(terminal, "stats", {})
        if self.categories is not None:
            vars(report).pop("_json_report_extra", None)
        for category, reports in stats.items():
            if not reports or reports[-1] is not report:
                continue
            if self.categories is None or category in self.categories:
                reports.pop()
            elif category == "passed" and not _reads_passed_reports(self.config, terminal):
                path = report.location[0]
                reports[-1] = self.counted.setdefault(path, Counted((path, None, "")))
            return


class TextIds(set[str]):
    """Test ids kept as text, whatever form they are added in (the text a parsed id caches, which its test's
    item or reports hold anyway)."""

    def add(self, element: object) -> None:
        super().add(str(element))


def _reads_passed_reports(config: pytest.Config, terminal: Any) -> bool:
    """Whether the terminal reporter reads passed reports beyond counting them (see ``LeanTerminalStats``)."""
    listed = set(getattr(terminal, "reportchars", "")) & set("pP")  # ``-rA`` included, ``-rN`` excluded
    return bool(listed) or config.option.durations is not None or config.getini("console_output_style") == "times"


@dataclass(frozen=True)
class Counted:
    """Stands in for passed reports in the terminal reporter's counts: the summary line reads how many there
    are (and the progress line the last one's file)."""

    location: tuple[str, int | None, str]
    count_towards_summary: bool = True


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    if report.when == "call" and report.failed and getattr(report, "alignment_status", None) == "exception":
        return "error", "E", "ERROR"
    return None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(STATE, None)
    if state is None:
        return None
    setup = state.setup
    lines = [
        f"alignment run {setup.run_id}: the input lists {counted(len(setup.branches.branches), 'branch', 'branches')} "
        f"for {counted(len(setup.branches.targets), 'target')}; repository {setup.location.git_dir}"
    ]
    shard = setup.branches.shard
    if shard is not None:
        lines.append(f"alignment shard {shard.spec}: {len(setup.branches.branches)} of {shard.input_branches} branches")
    if state.demo_dir is not None:
        lines.append(f"alignment demo: repository and input in {state.demo_dir}")
    return lines


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None and state.worker == "main" and os.environ.get("PYTEST_XDIST_WORKER") is None:
        del config.stash[STATE]
