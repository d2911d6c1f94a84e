"""Documentation: one Markdown change document per branch.

The document says what the alignment did or would have done: old and new tip, backup, the result's notes
(e.g. the commits a rebase dropped), the target commits brought in, the files the merge combined (changed
on both sides) with +/- counts and the command that lists every changed file, conflicts with the target
commits that caused them, and findings. A plan's document
says what the run would do. It lives at
``<run>/changes/<target>/<branch>.md``, where each name goes through ``branch_file_stem`` so that ``a/b`` and
``a-b`` (or any odd name) get distinct, safe file names inside the run folder.

In a ``--remote`` run the branch is pushed at the end of the run, after its document was written: its
``Push`` row says so, and ``record_push`` then rewrites the rows the push decides (status, new tip, push, and
for a backup on the remote the backup) and adds why it stopped when the push did not land. A branch the
controller puts back (its process stopped unheard after moving it) gets its status and new tip rewritten the
same way, by ``record_put_back``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from alignment.components import ChangeRecord
from alignment.config import Settings
from alignment.model import Action, BranchResult, CommitInfo, ErrorCode, Status
from alignment.names import branch_file_stem, printable
from alignment.runs import write_atomically

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")  # '&': no entity (``&amp;``) is read


def document_path(changes_dir: Path, target: str, branch: str) -> Path:
    return changes_dir / branch_file_stem(target) / f"{branch_file_stem(branch)}.md"


class MarkdownDocGenerator:
    """The default ``DocGenerator``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def document(self, record: ChangeRecord) -> str:
        context = record.context
        path = document_path(context.changes_dir, context.target, context.branch)
        write_atomically(path, render(record))
        return str(path)


def render(record: ChangeRecord) -> str:
    """The change document of ``record`` as Markdown."""
    context = record.context
    predicted = " — predicted by a plan; nothing was changed" if context.predict else ""
    remote = context.settings.remote
    pushes = remote is not None and not context.predict and record.status is Status.COMPLETED
    lines = [
        f"# {_text(context.branch)} ← {_text(context.target)}",
        "",
        _status_line(record.status, record.action) + predicted,
        "",
        "| | |",
        "|---|---|",
        f"| Branch | `{_code(context.branch)}` |",
        f"| Target | `{_code(context.target)}` at `{context.target_commit}` |",
        f"| Old tip | `{context.old_tip}` |",
        f"{_NEW_TIP}{_commit_cell(record)} |",
        _backup_row(record.backup_branch),
    ]
    if pushes and record.new_tip and record.new_tip != context.old_tip:
        lines.append(f"{_PUSH}to `{_code(str(remote))}` at the end of the run (this document then says how it went) |")
    lines += [f"| Run | `{context.run_id}` |", ""]
    lines += _why_it_stopped(record.status, record.message) + _notes_section(record.notes)
    lines += _commits_section(record) + _files_section(record) + _conflicts_section(record)
    lines += _findings_section(record)
    return "\n".join(lines).rstrip() + "\n"


_STATUS = "**Status:** "
_NEW_TIP = "| New tip | "
_BACKUP = "| Backup | "
_PUSH = "| Push | "
_STOPPED = "## Why it stopped"
_NOTES = "## Notes"


def _status_line(status: Status, action: Action) -> str:
    return f"{_STATUS}{status.value} ({action.value.replace('_', ' ')})"


def _backup_row(backup: str | None) -> str:
    return f"{_BACKUP}{f'`{_code(backup)}`' if backup else 'none'} |"


def record_backup_removed(path: Path) -> None:
    """Say in the change document at ``path``, written before the move, that ``auto_cleanup_backups`` removed
    the backup its ``Backup`` row names. A document without that row (another ``DocGenerator``'s) is left as
    it is; ``OSError`` when it cannot be read or replaced."""
    removed = " (removed after the alignment: auto_cleanup_backups) |"
    _rewrite_rows(path, {_BACKUP: lambda line: line.removesuffix(" |") + removed})


def _rewrite_rows(
    path: Path, rows: Mapping[str, Callable[[str], str]], section: Sequence[str] = (), notes: Sequence[str] = ()
) -> None:
    """Rewrite the change document at ``path``: each line that starts with a key of ``rows`` becomes what that
    key's function makes of it, ``section`` (a heading and its lines) goes before the first section unless
    its heading is there, and ``notes`` go at the end of the notes (``_with_notes``). Written only when that
    changes it; a document without a row for every key (none, or another ``DocGenerator``'s) is left as it is."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").split("\n")
    if not all(any(line.startswith(start) for line in lines) for start in rows):
        return
    updated = [next((row(line) for start, row in rows.items() if line.startswith(start)), line) for line in lines]
    if section and section[0] not in updated:
        first = next((index for index, line in enumerate(updated) if line.startswith("## ")), len(updated))
        updated[first:first] = section
    updated = _with_notes(updated, notes)
    if updated != lines:
        write_atomically(path, "\n".join(updated))


def _with_notes(lines: list[str], notes: Sequence[str]) -> list[str]:
    """``lines`` of a change document with ``notes`` at the end of its notes: the section ``_notes_section``
    makes, added after why it stopped (before the other sections) when it has none."""
    if not notes:
        return lines
    if _NOTES not in lines:
        stopped = lines.index(_STOPPED) + 1 if _STOPPED in lines else 0
        first = next((index for index in range(stopped, len(lines)) if lines[index].startswith("## ")), len(lines))
        return [*lines[:first], *_notes_section(notes), *lines[first:]]
    start = lines.index(_NOTES) + 2
    end = next((index for index in range(start, len(lines)) if not lines[index].startswith("- ")), len(lines))
    return [*lines[:end], *(f"- {_text(note)}" for note in notes), *lines[end:]]


def _why_it_stopped(status: Status, message: str | None) -> list[str]:
    if not message or status is Status.COMPLETED:
        return []
    return [_STOPPED, "", _text(message), ""]


def _notes_section(notes: Sequence[str]) -> list[str]:
    """The result's notes when the document was written (a backup reused or named past others, the commits a
    rebase dropped)."""
    if not notes:
        return []
    return [_NOTES, "", *(f"- {_text(note)}" for note in notes), ""]


def record_push(
    path: Path, result: BranchResult, aligned_commit: str | None, *, sent: bool, notes: Sequence[str] = ()
) -> None:
    """Bring the change document at ``path``, written before the push, up to date with ``result`` (the
    branch's result with what its push did; ``aligned_commit`` the commit it pushed, or tried to, None when not
    known here, which leaves the new tip row as it is; ``sent``: its push had started, False when it never did,
    so it did not land): its status, new tip, push and (when
    the backup is on the remote) backup rows, why it stopped when the push did not land, and ``notes`` (the
    result's since the document was written: its remote backup's) at the end of its notes. A document this
    module did not write (another ``DocGenerator``'s, or none on this machine) is left as it is; ``OSError``
    when it cannot be read or replaced."""
    push = result.push
    if push is None:
        return
    remote, kept = f"`{_code(push.remote)}`", f"`{_code(push.aligned_ref or '')}`"
    if push.pushed:
        tip, pushed = f"`{aligned_commit}`", f"pushed to {remote}"
    else:
        refused = not sent or ErrorCode.PUSH_REJECTED in result.codes
        landed = "not pushed to" if refused else "not known to have landed on"
        tip = f"`{aligned_commit}` (see the push)"
        pushed = f"{landed} {remote} ({', '.join(map(str, result.codes))}): ours is kept at {kept}"
    if push.remote_backup:
        pushed += f"; remote backup `{_code(push.remote_backup)}`"
    rows = {_STATUS: _row(_status_line(result.status, result.action)), _PUSH: _row(f"{_PUSH}{pushed} |")}
    if aligned_commit is not None:
        rows[_NEW_TIP] = _row(f"{_NEW_TIP}{tip} |")
    if push.remote_backup:  # a local backup keeps its row as written (auto_cleanup_backups may have noted it)
        rows[_BACKUP] = _row(_backup_row(result.backup_branch))
    _rewrite_rows(path, rows, _why_it_stopped(result.status, result.message), notes)


def record_put_back(path: Path, message: str, action: Action, *, merged: str | None) -> None:
    """Bring the change document at ``path``, written before the branch's process stopped unheard, in line with
    the ``exception`` result the controller makes for it from the journal: its status (with ``action``, what
    aligning it did), why it stopped (``message``: what putting it back did) and, when it was put back, its new
    tip (``merged``, the tip it was put back from: the branch is at its old tip again; None: it was not put
    back, the row stays). A document this module did not write is left as it is; ``OSError`` when it cannot be
    read or replaced."""
    rows = {_STATUS: _row(_status_line(Status.EXCEPTION, action))}
    if merged is not None:
        rows[_NEW_TIP] = _row(f"{_NEW_TIP}`{merged}` (put back: the branch is at its old tip again) |")
    _rewrite_rows(path, rows, _why_it_stopped(Status.EXCEPTION, message))


def _row(text: str) -> Callable[[str], str]:
    """A row's new text, whatever it said before."""
    return lambda line: text


def _commit_cell(record: ChangeRecord) -> str:
    if record.status is Status.COMPLETED and record.new_tip:
        return f"`{record.new_tip}`" + (" (predicted)" if record.context.predict else "")
    if record.new_tip:
        return f"`{record.new_tip}` (not applied: the branch stays at its old tip)"
    return "none (the branch stays at its old tip)"


@functools.lru_cache(maxsize=4096)
def _commit_line(commit: CommitInfo) -> str:
    """One commit's list item; cached, as the branches of a target list the same target commits."""
    return f"- `{commit.oid[:12]}` {_text(commit.subject)} — {_text(commit.author)}"


def _commits_section(record: ChangeRecord) -> list[str]:
    if not record.commits:
        return ["## Commits brought in", "", "None: the branch already contains the target.", ""]
    count = f"{len(record.commits)}{'+' if record.more_commits else ''}"
    lines = [f"## Commits brought in from {_text(record.context.target)} ({count})", ""]
    lines += [_commit_line(commit) for commit in record.commits]
    if record.more_commits:
        lines.append("- … and more (see `git log`)")
    return [*lines, ""]


def _files_section(record: ChangeRecord) -> list[str]:
    """The files the merge combined, in detail; the rest, which come unchanged from the target, by command."""
    context = record.context
    if not record.new_tip or record.new_tip == context.old_tip:
        return []
    everything = f"`git diff --stat {context.old_tip} {record.new_tip}`"
    if not record.merged_files:
        text = f"None: every file the alignment changes comes unchanged from {_text(context.target)} ({everything})."
        return ["## Files merged", "", text, ""]
    added = sum(change.added or 0 for change in record.merged_files)
    deleted = sum(change.deleted or 0 for change in record.merged_files)
    lines = [
        f"## Files merged ({len(record.merged_files)}, +{added} -{deleted})",
        "",
        f"Changed on both sides and combined by the alignment; +/- against the old tip. The other files come "
        f"unchanged from {_text(context.target)} ({everything} lists every file).",
        "",
        "| File | Change | + | - |",
        "|---|---|---:|---:|",
    ]
    for change in record.merged_files:
        plus = "binary" if change.added is None else str(change.added)
        minus = "" if change.deleted is None else str(change.deleted)
        path = f"`{_code(change.path)}`"
        if change.old_path is not None:
            path = f"`{_code(change.old_path)}` → {path}"
        lines.append(f"| {path} | {change.status} | {plus} | {minus} |")
    return [*lines, ""]


def _conflicts_section(record: ChangeRecord) -> list[str]:
    if not record.conflicts:
        return []
    lines = ["## Conflicts", ""]
    lines += [f"- `{_code(conflict.path)}` ({conflict.kind})" for conflict in record.conflicts]
    if record.culprits:
        lines += ["", f"## What caused them in {_text(record.context.target)}", ""]
        lines += [
            f"- `{_code(culprit.path)}`: `{culprit.commit.oid[:12]}` {_text(culprit.commit.subject)} — "
            f"{_text(culprit.commit.author)}"
            for culprit in record.culprits
        ]
    if record.unexplained:
        lines += ["", "## Not explained within the budget", ""]
        lines += [
            f"- {', '.join(f'`{_code(path)}`' for path in group.paths)}: caused by one of {group.candidates} "
            f"commits from `{group.first[:12]}` to `{group.last[:12]}` on {_text(record.context.target)}'s "
            f"first-parent line (`git log --first-parent {group.first[:12]}^..{group.last[:12]} -- PATH`)"
            for group in record.unexplained
        ]
    return [*lines, ""]


def _findings_section(record: ChangeRecord) -> list[str]:
    if not record.findings:
        return ["## Findings", "", "None.", ""]
    lines = ["## Findings", "", "| Severity | Code | Where | Message |", "|---|---|---|---|"]
    for finding in record.findings:
        where = f"`{_code(finding.file)}{f':{finding.line}' if finding.line else ''}`" if finding.file else ""
        severity = finding.severity.value + ("" if finding.introduced else " (pre-existing)")
        lines.append(f"| {severity} | `{finding.code}` | {where} | {_text(finding.message)} |")
    return [*lines, ""]


def _text(value: str) -> str:
    """Markdown-escaped text: a branch name, path or subject cannot inject markup or end a table row."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", printable(value))


def _code(value: str) -> str:
    """Content for a code span: backticks, pipes and line breaks cannot close it or break a table."""
    return printable(value).replace("`", "'").replace("|", "\\|")
