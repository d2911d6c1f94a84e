"""A test-only plugin (``-p tests.plugin.ctrl_c_collecting``): Ctrl-C before any branch started.

``CTRL_C_WHEN=starting``: in the controller as it starts its workers. ``CTRL_C_WHEN=collecting``: while the
workers collect. ``CTRL_C_WHEN=alone``: while the one process of a run without xdist collects. A Ctrl-C in a
terminal reaches every process of the run: the controller (here as its first worker reports ready) and each
worker, in its collection (here at its first item, once the controller has had it). ``CTRL_C_FLAG`` names the
file by which the controller tells the workers."""

import os
import time
from pathlib import Path
from typing import Any

import pytest

WAIT_SECONDS = 60


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes() -> None:
    if os.environ["CTRL_C_WHEN"] == "starting":
        raise KeyboardInterrupt


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node: Any) -> None:
    if os.environ["CTRL_C_WHEN"] == "collecting":
        Path(os.environ["CTRL_C_FLAG"]).touch()
        raise KeyboardInterrupt


def pytest_itemcollected(item: pytest.Item) -> None:
    when, worker = os.environ["CTRL_C_WHEN"], hasattr(item.config, "workerinput")
    if when == "alone":
        raise KeyboardInterrupt
    if not worker or when != "collecting":
        return
    flag, ends = Path(os.environ["CTRL_C_FLAG"]), time.monotonic() + WAIT_SECONDS
    while not flag.exists() and time.monotonic() < ends:
        time.sleep(0.05)
    raise KeyboardInterrupt
