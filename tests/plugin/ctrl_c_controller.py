"""A test-only plugin (``-p tests.plugin.ctrl_c_controller``): Ctrl-C to the xdist controller alone, not to its
workers (a signal sent to the pytest process, not to its process group), once it has heard the first branch
end and a worker has begun integrating a branch whose start it has not heard (``MeetingIntegrator`` leaves a
file per branch in the directory that ``ALIGNMENT_TEST_MEET`` names): the workers still hold the branches
queued on them, and that branch moves after the Ctrl-C, unheard."""

import os
import time
from pathlib import Path

import pytest

WAIT_SECONDS = 60
heard: set[str] = set()  # the branches whose setup report the controller has read
roles: list[bool] = []  # whether this process is the controller; not from PYTEST_XDIST_WORKER, which the
# processes of a run inherit from a project test that itself runs in an xdist worker


def pytest_configure(config: pytest.Config) -> None:
    roles.append(not hasattr(config, "workerinput"))


def _controller() -> bool:
    return roles[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _controller() and report.when == "setup":
        heard.add(report.nodeid.partition("[")[2].removesuffix("]"))


def pytest_runtest_logfinish(nodeid: str) -> None:
    if not _controller():
        return
    integrating = Path(os.environ["ALIGNMENT_TEST_MEET"].split(":", 2)[2])
    ends = time.monotonic() + WAIT_SECONDS
    while not {path.name for path in integrating.iterdir()} - heard and time.monotonic() < ends:
        time.sleep(0.01)
    raise KeyboardInterrupt
