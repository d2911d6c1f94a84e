"""The reports folder: where each run writes, which runs it holds and how far each got, and the atomic write.

Runs never overwrite each other: each writes ``<reports>/runs/<run id>/``; a finished real run then points
``<reports>/latest`` at its folder. Every file a reader may open while it is being written (results, change
documents) is written whole or not at all by ``write_atomically``; the move journal is appended to, a line
per record (``journal``).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from alignment.errors import FileProblem, UsageProblem, kind_of

log = logging.getLogger(__name__)

RESULTS_FILE = "alignment_results.json"
PLAN_FILE = "alignment_plan.json"
RUN_RECORD = "run.json"


def new_run_id(now: float) -> str:
    """Sortable and unique: UTC time plus random hex, e.g. ``20261125T101500Z-3fa9c1``."""
    stamp = datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


@dataclass(frozen=True)
class RunFolder:
    """Where one run writes: ``<reports>/runs/<run id>/`` and the shared pointers above it."""

    reports_dir: Path
    run_id: str

    @property
    def path(self) -> Path:
        return self.reports_dir / "runs" / self.run_id

    @property
    def record_path(self) -> Path:
        """``run.json``: written when the run starts; the repository, the input and the scratch directory."""
        return self.path / RUN_RECORD

    @property
    def changes_dir(self) -> Path:
        return self.path / "changes"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def moves_dir(self) -> Path:
        return self.path / "moves"

    @property
    def audit_path(self) -> Path:
        return self.path / "audit.jsonl"

    @property
    def pytest_report_path(self) -> Path:
        return self.path / "pytest-report.json"

    def make(self) -> None:
        """Make the run's folder, before its scratch directory and record; one that cannot be made is a
        ``UsageProblem`` (``check_publishable`` cannot see every such case, e.g. a reports directory in ``/proc``)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageProblem(
                f"reports directory {self.reports_dir}: cannot make the run's folder {self.path} ({exc.strerror})"
            ) from None

    def write_record(self, record: Mapping[str, Any]) -> None:
        write_atomically(self.record_path, json.dumps(record, indent=2) + "\n")

    def record(self) -> Mapping[str, Any]:
        """The run record; a ``FileProblem`` when it cannot be read (see ``read_run_file``)."""
        return read_run_file(self.record_path, RECORD_FIELDS)

    def remove(self) -> None:
        """Delete the folder of a run that never started (pytest refused it after its setup). A folder with a
        journaled move is kept: ``alignment undo`` reads it."""
        moved = self.moves_dir.is_dir() and any(self.moves_dir.iterdir())
        if not moved:
            shutil.rmtree(self.path, ignore_errors=True)

    @property
    def latest(self) -> Path:
        """``<reports>/latest``: the symlink to the last real run's folder."""
        return self.reports_dir / "latest"

    def check_publishable(self, *, predict: bool) -> None:
        """Refuse, before the run changes anything, a reports directory it could not finish in: one that is a
        file (or inside one), or whose ``runs`` is one, or, for a real run, whose ``latest`` is something else
        than a symlink (a copy made with symlinks followed holds a directory there), which ``point_latest``
        would not replace."""
        existing = next(path for path in (self.path, *self.path.parents) if os.path.lexists(path))
        if not existing.is_dir():
            raise UsageProblem(f"reports directory {self.reports_dir}: expected a directory, but {existing} is a file")
        if not predict and os.path.lexists(self.latest) and not self.latest.is_symlink():
            raise UsageProblem(
                f"{self.latest}: expected the symlink to the last run's folder, got a "
                f"{'directory' if self.latest.is_dir() else 'file'}: move it away (runs point latest at their folder)"
            )

    def point_latest(self) -> None:
        """Point ``<reports>/latest`` at this run's folder, in one rename. Only a symlink is replaced: something
        else put there since ``check_publishable`` stays, and the run's results are published without it."""
        if os.path.lexists(self.latest) and not self.latest.is_symlink():
            log.warning("%s is not a symlink: left as it is, not pointed at run %s", self.latest, self.run_id)
            return
        temporary = self.reports_dir / f".latest-{secrets.token_hex(4)}"
        os.symlink(Path("runs") / self.run_id, temporary)
        os.replace(temporary, self.latest)


class RunState(str, Enum):
    """How far a run got: its results written, its plan written, or neither (running, or it died)."""

    FINISHED = "finished"
    PLANNED = "planned"
    UNFINISHED = "unfinished"


_OUTPUT = {RunState.FINISHED: RESULTS_FILE, RunState.PLANNED: PLAN_FILE}  # the file each state has written


@dataclass(frozen=True)
class RunEntry:
    """One run found in a reports folder; its files are read only when asked for."""

    folder: RunFolder
    state: RunState

    @property
    def run_id(self) -> str:
        return self.folder.run_id

    def summary(self) -> Mapping[str, Any]:
        """The ``overall_summary`` of its results or plan (empty while unfinished); a ``FileProblem`` when
        that file cannot be read."""
        name = _OUTPUT.get(self.state)
        if name is None:
            return {}
        results = read_run_file(self.folder.path / name, {"overall_summary": dict})
        summary: Mapping[str, Any] = results["overall_summary"]
        return summary


RECORD_FIELDS = {"repository": str, "scratch_dir": str}  # what readers of ``run.json`` use, and their types


def read_run_file(path: Path, fields: Mapping[str, type]) -> Mapping[str, Any]:
    """The JSON object of a run's file, with ``fields`` of their types; else a ``FileProblem`` naming the file.

    Files are not ``fsync``'d: after a power cut one may be empty or cut short. Such a run is skipped where
    runs are listed or swept, and named in one line where it is asked for, so one bad file blocks nothing else.
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise FileProblem(path, "", f"cannot be read ({exc}); expected a run's JSON file") from None
    except json.JSONDecodeError as exc:
        got = "an empty file (cut short by a crash or power cut?)" if not text.strip() else f"invalid JSON ({exc.msg})"
        raise FileProblem(path, "", f"expected a run's JSON object, got {got}") from None
    if not isinstance(data, dict):
        raise FileProblem(path, "top level", f"expected a run's JSON object, got {kind_of(data)}")
    missing = [name for name in fields if name not in data]
    if missing:
        raise FileProblem(path, missing[0], "required field is missing")
    for name, kind in fields.items():
        if not isinstance(data[name], kind):  # a reader would crash on it, in every later run
            raise FileProblem(path, name, f"expected {kind_of(kind())}, got {kind_of(data[name])}")
    return data


def list_runs(reports_dir: Path) -> list[RunEntry]:
    """Every run of ``reports_dir`` that wrote its record, oldest first (run ids sort by time)."""
    entries = []
    for record_path in sorted(reports_dir.glob(f"runs/*/{RUN_RECORD}")):
        folder = RunFolder(reports_dir, record_path.parent.name)
        written = (state for state, name in _OUTPUT.items() if (folder.path / name).exists())
        entries.append(RunEntry(folder, next(written, RunState.UNFINISHED)))
    return entries
