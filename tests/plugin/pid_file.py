"""A test-only plugin (``-p tests.plugin.pid_file``): the controlling process writes its process id to the file
``$ALIGNMENT_TEST_PID_FILE``, so that a server hook can send it Ctrl-C (SIGINT) while it waits for a push:
the signal comes at that moment, without a sleep."""

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        Path(os.environ["ALIGNMENT_TEST_PID_FILE"]).write_text(str(os.getpid()), encoding="utf-8")
