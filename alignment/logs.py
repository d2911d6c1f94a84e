"""Logging of a run: per-branch log files and the JSON-lines audit trail.

Modules log through ``logging.getLogger(__name__)`` and never print. While a branch is being aligned its
name sits in a context variable (per thread, per worker), and ``BranchLogFiles`` copies every record logged
meanwhile into ``<run>/logs/<branch>.log``. The audit trail appends one JSON object per line with a single
``O_APPEND`` write under a lock, so concurrent writers cannot interleave inside a line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TextIO

from alignment.config import Settings
from alignment.model import iso_utc
from alignment.names import branch_file_stem, json_text, printable

LIBRARY_LOGGER = "alignment"
_LINE_BREAK = re.compile(r"\r?\n")
_CONTINUATION = "\n    "  # before each further line of a record
_current_branch: ContextVar[str | None] = ContextVar("alignment_branch", default=None)


@contextlib.contextmanager
def branch_scope(branch: str) -> Iterator[None]:
    """Attribute log records emitted inside the block to ``branch``."""
    token = _current_branch.set(branch)
    try:
        yield
    finally:
        _current_branch.reset(token)


class _PrintableFormatter(logging.Formatter):
    """Log lines with control characters escaped: a log file is read in a terminal, and paths are data.

    A message of several lines (a failed check command's output) keeps its line breaks, each further line
    indented: escaped, they ran together as one line full of ``\\n``; indented, no line of it can pass for
    a record of its own, which starts with its time.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        lines = _LINE_BREAK.split(super().formatMessage(record).rstrip("\r\n"))
        return _CONTINUATION.join(printable(line) for line in lines)


class BranchLogFiles(logging.Handler):
    """Writes each record logged inside ``branch_scope(name)`` to ``<logs_dir>/<name>.log``.

    The files of the branches logged to last stay open (line-buffered: each record reaches the file at once,
    so a killed worker loses nothing), so a record costs a write, not an open.
    """

    OPEN_FILES = 16

    def __init__(self, logs_dir: Path) -> None:
        super().__init__()
        self.logs_dir = logs_dir
        self.setFormatter(_PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._files: OrderedDict[str, TextIO] = OrderedDict()

    def emit(self, record: logging.LogRecord) -> None:
        branch = _current_branch.get()
        if branch is None:
            return
        try:
            self._file(branch).write(self.format(record) + "\n")
        except Exception:  # a log file must never fail a branch
            self.handleError(record)

    def _file(self, branch: str) -> TextIO:
        if branch in self._files:
            self._files.move_to_end(branch)
            return self._files[branch]
        if len(self._files) >= self.OPEN_FILES:
            self._files.popitem(last=False)[1].close()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        path = self.logs_dir / f"{branch_file_stem(branch)}.log"
        handle = self._files[branch] = path.open("a", encoding="utf-8", buffering=1)
        return handle

    def close(self) -> None:
        with self.lock or contextlib.nullcontext():
            for handle in self._files.values():
                handle.close()
            self._files.clear()
        super().close()


def log_to_branch(logs_dir: Path, settings: Settings, branch: str, logger: str, level: int, message: str) -> None:
    """Add one record to ``branch``'s log file in ``logs_dir`` from outside its process's logging, as ``settings``
    have the run log (per branch, at their level or above): the controller puts back a branch whose process
    stopped before it said so, and its log should end with that."""
    if not settings.log_per_branch or level < logging.getLevelName(settings.log_level):
        return
    handler = BranchLogFiles(logs_dir)
    try:
        with branch_scope(branch):
            handler.handle(logging.LogRecord(logger, level, __file__, 0, message, None, None))
    finally:
        handler.close()


@contextlib.contextmanager
def run_logging(level: str, logs_dir: Path | None) -> Iterator[None]:
    """Set the library's log level and, with ``logs_dir``, attach the per-branch files for the block."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    previous = logger.level
    logger.setLevel(level)
    handler = BranchLogFiles(logs_dir) if logs_dir is not None else None
    if handler is not None:
        logger.addHandler(handler)
    try:
        yield
    finally:
        logger.setLevel(previous)
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()


class AuditTrail:
    """Append-only JSON lines: run and branch start/end, outcomes, old and new tips. Thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        line = json_text({"time": iso_utc(time.time()), "event": event, **fields}) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line.encode("utf-8"))
            finally:
                os.close(descriptor)
