"""The exception tree of the alignment library.

Low-level failures (a git process, a file) are translated into these at the boundary where they happen
(``raise InputError(...) from exc``), so callers handle one family and every message is one readable line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from alignment.model import Status

if TYPE_CHECKING:
    from typing_extensions import Self

MAX_LISTED_PROBLEMS = 20  # a file with thousands of bad entries still gives a line one can read


class AlignmentError(Exception):
    """Base class of every error this library raises on purpose."""


class UsageProblem(AlignmentError):
    """Bad input the user can fix: a file, a field, an option. Nothing was changed when it is raised."""


class FileProblem(UsageProblem):
    """A file the user wrote does not match its format: ``<file>: <where>: <what was expected>``."""

    def __init__(self, path: object, where: str, problem: str) -> None:
        self.path = str(path)
        self.where = where
        self.problem = one_line(problem)
        super().__init__(f"{self.path}: {where}: {self.problem}" if where else f"{self.path}: {self.problem}")

    @classmethod
    def of_all(cls, path: object, problems: Sequence[str]) -> Self:
        """One error for every problem (``where: what``) of a file: the problem itself when alone, else a count
        and the list (the first ``MAX_LISTED_PROBLEMS``), so a hand-written file is fixed in one pass."""
        if len(problems) == 1:
            where, _, problem = problems[0].partition(": ")
            return cls(path, where, problem)
        return cls(path, "", f"{len(problems)} problems: {first_and_more(problems, MAX_LISTED_PROBLEMS)}")


class InputError(FileProblem):
    """``categorized_branches.json`` (or another input file) is missing or does not match its format."""


class ConfigError(FileProblem):
    """The YAML configuration has an unknown key, a wrong type or a value out of range."""


class RepositoryError(UsageProblem):
    """The path given as the repository is not a git repository we can work on."""


class RepositoryRefused(RepositoryError):
    """A repository is at the path, but git refuses it (owned by another user, not trusted): not a path with no
    repository, which a caller may pass over for another."""


class ObjectWriteError(AlignmentError):
    """A commit object could not be written into the repository's object directory (disk full, no permission)."""


class GitError(AlignmentError):
    """A git command failed. ``args`` excludes the ``git`` executable and our ``-c`` safety options."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.args_ = tuple(args)
        self.returncode = returncode
        self.stderr = stderr.strip()
        lines = self.stderr.splitlines()
        reasons = [line for line in lines if line.startswith(("fatal:", "error:"))]
        self.reason = self._telling(reasons, lines) or f"exit code {returncode}"
        self.cause = (reasons or [self.reason])[0]  # the first complaint: a transport's real reason comes first
        super().__init__(f"git {' '.join(self.args_[:2])} failed: {self.reason}")

    @staticmethod
    def _telling(reasons: Sequence[str], lines: Sequence[str]) -> str | None:
        """The line the message quotes: git's last complaint (its conclusion), else its last line."""
        return reasons[-1] if reasons else lines[-1] if lines else None

    @property
    def detail(self) -> str:
        """``reason`` without git's ``fatal:`` prefix, to quote inside our own messages."""
        return self.reason.removeprefix("fatal: ")


class CheckoutFailed(GitError):
    """git could not check a commit out into a worktree. Run quietly, so all it writes is complaints, and the
    first is the cause: a clean/smudge filter's own words (``git-lfs: not found``) come before what git
    concludes from them, which varies from run to run (``the remote end hung up unexpectedly``)."""

    @staticmethod
    def _telling(reasons: Sequence[str], lines: Sequence[str]) -> str | None:
        return lines[0] if lines else None


class GitTimeout(GitError):
    """A git command ran past its time limit; its whole process group was killed."""

    def __init__(self, args: Sequence[str], timeout: float) -> None:
        super().__init__(args, -9, f"timed out after {seconds(timeout)} s")
        self.timeout = timeout


class RepositoryGone(GitError):
    """git could not start: the directory it runs in for the repository (``RepoLocation.run_dir``) is gone, e.g.
    the linked worktree given as ``--repo`` was removed during the run. No git call can work there any more."""

    def __init__(self, args: Sequence[str], where: object) -> None:
        super().__init__(args, 128, f"fatal: the directory git runs in is gone: {where}")


class RefUpdateRejected(GitError):
    """A compare-and-swap ref update found the ref somewhere other than expected (or locked)."""


class MissingRemoteRef(GitError):
    """A fetch named a ref the remote does not have (git names the first one and fetches nothing)."""


class FetchRejected(GitError):
    """A fetch left refs as they were, which git only warns of (exit code 0: the new tips are a shallow remote's
    roots). ``refs``: each such local ref, with git's reason."""

    def __init__(self, args: Sequence[str], stderr: str, refs: Mapping[str, str]) -> None:
        super().__init__(args, 0, stderr)
        self.refs = dict(refs)


class UnrelatedHistories(GitError):
    """A merge was asked of two commits with no common ancestor: git refuses it, our steps report it."""


class StepFailed(AlignmentError):
    """A pipeline step ended the branch's alignment with a failure status (not a bug: a result).

    ``codes`` are the stable error codes reported in ``errors_detected``: ``ErrorCode`` members, or the codes
    of the findings that failed error detection.
    """

    def __init__(self, status: Status, codes: Sequence[str], message: str) -> None:
        self.status = status
        self.codes = tuple(str(code) for code in codes)
        self.message = message
        super().__init__(message)


def seconds(value: float) -> str:
    """A time limit as messages say it: ``2``, ``1.93``, ``1800``; a limit left of a deadline has no more
    decimals than anyone reads, but a positive limit below a hundredth keeps its first digits (``0.001``),
    never ``0``."""
    return f"{round(value, 2):g}" if round(value, 2) or not value else f"{value:.2g}"


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks folded: error messages here are one line."""
    return " ".join(text.split())


def noun(count: int, singular: str, plural: str | None = None) -> str:
    """The noun for ``count`` things: ``branch`` for one, ``branches`` for others (default plural: + ``s``)."""
    return singular if count == 1 else plural or singular + "s"


def first_and_more(items: Sequence[str], limit: int, separator: str = "; ") -> str:
    """``a; b; and 3 more``: the first ``limit`` of ``items`` joined by ``separator``, then how many more there
    are, so that thousands of them still make a line one can read."""
    more = f"{separator}and {len(items) - limit} more" if len(items) > limit else ""
    return separator.join(items[:limit]) + more


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 branch``, ``2 branches``: a count with its noun in the right number."""
    return f"{count} {noun(count, singular, plural)}"


def kind_of(value: object) -> str:
    """A value's JSON/YAML kind for messages: ``expected a list, got an object``."""
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "a number"
    labels = ((str, "a string"), (list, "a list"), (Mapping, "an object"))
    return next((label for kind, label in labels if isinstance(value, kind)), type(value).__name__)


def shown(value: object) -> str:
    """A short JSON rendering of a bad value for messages."""
    try:
        text = json.dumps(value, default=repr)
    except ValueError:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
