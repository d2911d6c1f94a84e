"""Loaded into inner pytest runs with ``-p tests.plugin.collected_order``: with ``ALIGNMENT_TEST_ORDER=DIR``,
each xdist worker writes the test ids it collected, in the order it will run them, to ``DIR/<worker>.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    folder, worker = os.environ.get("ALIGNMENT_TEST_ORDER"), os.environ.get("PYTEST_XDIST_WORKER")
    if folder and worker:
        ids = [item.nodeid for item in session.items]
        (Path(folder) / f"{worker}.json").write_text(json.dumps(ids), encoding="utf-8")
