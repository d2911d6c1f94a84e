"""pytest-json-report's per-test entries, packed by the controller until the report is written.

``PackedTestEntries`` replaces that plugin's ``_json_tests``, an internal: checked here against the installed
release, so that a new one fails here, not by holding every entry unpacked (or by breaking the report).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from pytest_jsonreport.plugin import JSONReport

from alignment.spill import Spilled, SpillFile
from plugins.controller import PackedTestEntries

ENTRY = {
    "nodeid": "alignment/test_branches.py::test_branch[feature/\u00e9t\u00e9]",
    "lineno": 9,
    "outcome": "failed",
    "setup": {"duration": 0.0012345678901234567, "outcome": "passed"},
    "call": {"duration": 1e-07, "outcome": "failed", "crash": {"path": "x", "lineno": 3, "message": "a\nb"}},
    "user_properties": [{"alignment_result": "feature/\u00e9t\u00e9"}],
}


def stored(entries: PackedTestEntries, nodeid: str) -> Any:
    return dict.__getitem__(entries, nodeid)


def test_a_finished_entry_is_packed_and_reads_back_equal_in_order(tmp_path: Path) -> None:
    entries = PackedTestEntries(spill=SpillFile(tmp_path))
    entries["a"] = {key: value for key, value in ENTRY.items()}
    entries["b"] = {"nodeid": "b", "outcome": "passed"}
    entries.pack("a")
    assert isinstance(stored(entries, "a"), Spilled), "kept on disk, not in memory"
    assert stored(entries, "a").size < 400
    assert entries.values() == [ENTRY, {"nodeid": "b", "outcome": "passed"}]
    assert list(entries.values()[0]) == list(ENTRY), "the report's keys keep their order"
    entries.pack("a")
    entries["a"]["outcome"] = "error"  # a later report of the same test: its entry is a dict again
    assert entries["a"]["outcome"] == "error"


def test_an_entry_json_would_not_give_back_equal_stays_as_it_is(tmp_path: Path) -> None:
    entries = PackedTestEntries(spill=SpillFile(tmp_path))
    entries["tuple"] = {"metadata": {"pair": (1, 2)}}  # JSON gives a list back
    entries["object"] = {"metadata": {"what": object()}}  # the plugin writes str() of it
    entries["nan"] = {"duration": float("nan")}
    entries["surrogate"] = {"longrepr": "caf\udce9"}  # a lone surrogate: no UTF-8 for it (json.dumps escapes it)
    for nodeid in ("tuple", "object", "nan", "surrogate", "unknown"):
        entries.pack(nodeid)
    assert all(isinstance(value, dict) for value in dict.values(entries))


def test_the_installed_json_report_keeps_its_entries_where_they_are_packed() -> None:
    assert isinstance(JSONReport()._json_tests, dict)
    logreport = inspect.getsource(JSONReport.pytest_runtest_logreport)
    assert "self._json_tests[nodeid]" in logreport
    assert "self._json_tests.values()" in inspect.getsource(JSONReport.pytest_sessionfinish)
