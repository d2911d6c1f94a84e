"""Loaded into inner pytest runs with ``-p tests.plugin.crash_plugin``: kills an xdist worker on purpose.

``ALIGNMENT_TEST_KILL=<branch>:<when>`` SIGKILLs the worker aligning ``<branch>`` either ``before`` the
test's steps (after the fixture made the backup) or ``after`` them (after the branch ref moved), each time
before the fixture's teardown could finish the branch.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest


def _victim(item: pytest.Item, moment: str) -> bool:
    branch, _, when = os.environ.get("ALIGNMENT_TEST_KILL", "").partition(":")
    return "PYTEST_XDIST_WORKER" in os.environ and when == moment and item.name == f"test_branch[{branch}]"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if _victim(item, "before"):
        os.kill(os.getpid(), signal.SIGKILL)
    yield
    if _victim(item, "after"):
        os.kill(os.getpid(), signal.SIGKILL)
