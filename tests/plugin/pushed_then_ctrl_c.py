"""A test-only plugin (``-p tests.plugin.pushed_then_ctrl_c``) for a ``--remote origin`` run: the controller
publishes as under ``--worker-clones`` (what its workers report), and at the start of the phase that
``ALIGNMENT_TEST_PUSHED_AT`` names (``setup``: the controller never hears the branch start; ``call``: it heard
it start; ``teardown``: its call passed) of the branch ``pushed``, Ctrl-C: no worker reports it. Before a
``setup`` or ``call`` Ctrl-C its push to ``origin`` is journaled in the run's folder, as a worker in a clone of
its own that shares the disk journals it before ``git push`` runs; before a ``teardown`` one, nothing is: a
worker pushes only the branches whose teardown ended. ``ALIGNMENT_TEST_WORKER_CLONES=0``: a plain ``--remote``
run instead, whose controller pushes at its end."""

import os

import pytest

from alignment.journal import Move, MoveJournal
from plugins.controller import WorkerPushes

BRANCH = "pushed"


def _push_then_ctrl_c(item: pytest.Item, phase: str) -> None:
    if os.environ["ALIGNMENT_TEST_PUSHED_AT"] != phase or not item.nodeid.endswith(f"[{BRANCH}]"):
        return
    controller = item.config.pluginmanager.getplugin("alignment-controller")
    if os.environ.get("ALIGNMENT_TEST_WORKER_CLONES", "1") == "1":  # "0": a plain --remote run, pushed at its end
        controller.worker_pushes = WorkerPushes(controller.setup)
    if phase != "teardown":
        old_tip = controller.setup.snapshot.tips[BRANCH]
        new_tip = os.environ["ALIGNMENT_TEST_PUSHED_TIP"]
        MoveJournal(controller.setup.folder.moves_dir).record(Move(BRANCH, old_tip, new_tip, remote="origin"))
    raise KeyboardInterrupt


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _push_then_ctrl_c(item, "setup")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    _push_then_ctrl_c(item, "call")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    _push_then_ctrl_c(item, "teardown")
