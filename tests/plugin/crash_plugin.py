"""Loaded into inner pytest runs with ``-p tests.plugin.crash_plugin``: kills an xdist worker on purpose.

``ALIGNMENT_TEST_KILL=<branch>:<when>`` SIGKILLs the worker aligning ``<branch>`` either ``before`` the
test's steps (after the fixture made the backup) or ``after`` them (after the branch ref moved), each time
before the fixture's teardown could finish the branch, or ``moved`` after them once the branch was moved
again (to its target's tip, as someone else's push would), so that the controller cannot put it back.
"""

from __future__ import annotations

import os
import signal
import subprocess
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
    if _victim(item, "moved"):
        repo = str(item.config.getoption("alignment_repo"))
        target = subprocess.run(["git", "-C", repo, "rev-parse", "main"], capture_output=True, text=True, check=True)
        branch = os.environ["ALIGNMENT_TEST_KILL"].partition(":")[0]
        subprocess.run(["git", "-C", repo, "branch", "-f", branch, target.stdout.strip()], check=True)
    if _victim(item, "after") or _victim(item, "moved"):
        os.kill(os.getpid(), signal.SIGKILL)
