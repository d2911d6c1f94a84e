"""The HTML report: one self-contained page beside each results (or plan) JSON file.

No server and no CDN: styles, the SVG timeline and a few lines of script are inline, so the file can be
opened straight from disk or attached to a CI run. It shows the headline numbers, a table per target with
status colours, findings with file:line and links to each change document, a timeline of branch start and
end per worker (parallelism and a circuit breaker trip are visible there), the conflict causes and, in a
plan, the pairwise conflict matrix. It reads only the results dict, the same one Task 080 reads.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

STATUS_COLOURS = {
    "completed": "#1a7f37",
    "failed_integration": "#cf222e",
    "failed_error_detection": "#bc4c00",
    "exception": "#8250df",
    "not_run": "#6e7781",
}
MATRIX_LIMIT = 40  # branches per target shown as a grid; more are listed as pairs only
TIMELINE_WIDTH, ROW_HEIGHT, LABEL_WIDTH = 900, 22, 150

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f6f8fa}
.status{color:#fff;border-radius:4px;padding:0 6px;white-space:nowrap}.num{text-align:right}
.headline span{display:inline-block;margin-right:18px}.headline b{font-size:20px}
code{font-size:12px}#filters button{margin-right:6px}.matrix td{text-align:center;min-width:18px}
.hit{background:#ffebe9;color:#cf222e}.muted{color:#6e7781}
"""
_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-status]"));
  var bar = document.getElementById("filters");
  var counts = {all: rows.length};
  rows.forEach(function (row) { counts[row.dataset.status] = (counts[row.dataset.status] || 0) + 1; });
  Object.keys(counts).forEach(function (status) {
    var button = document.createElement("button");
    button.textContent = status.replace(/_/g, " ") + " (" + counts[status] + ")";
    button.dataset.filter = status;
    button.onclick = function () {
      rows.forEach(function (row) {
        row.hidden = status !== "all" && row.dataset.status !== status;
      });
    };
    bar.appendChild(button);
  });
})();
"""


def render_report(results: Mapping[str, Any], directory: Path) -> str:
    """The page for ``results``, with links relative to ``directory`` (where the page is written)."""
    planned = bool(results.get("planned"))
    summary = results["overall_summary"]
    groups: Mapping[str, Any] = results["orchestration_results"]
    kind = "plan" if planned else "run"
    title = f"Branch alignment {kind} {results.get('run_id', '')}".strip()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _headline(results, planned),
        '<div id="filters" aria-label="filter branches by status"></div>',
    ]
    for target, group in groups.items():
        parts.append(_group_section(target, group, directory, planned))
    parts.append(_timeline(groups, summary))
    parts.append(_causes(groups))
    if planned:
        parts.append(_matrices(groups))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(part for part in parts if part) + "\n"


def headline_numbers(results: Mapping[str, Any]) -> dict[str, int]:
    """The counts the page and the terminal summary lead with."""
    summary = results["overall_summary"]
    branches = [branch for group in results["orchestration_results"].values() for branch in group["branches"]]
    pairs = sum(
        len(group.get("conflict_matrix", {}).get("conflicts", ()))
        for group in results["orchestration_results"].values()
    )
    return {
        "branches": summary["total_branches_processed"] + summary["total_not_run"],
        "completed": summary["total_successful"],
        "failed": summary["total_failed"],
        "not_run": summary["total_not_run"],
        "conflicts": sum("merge_conflict_unresolvable" in branch["errors_detected"] for branch in branches),
        "explained": sum(bool(branch.get("culprits")) for branch in branches),
        "pair_conflicts": pairs,
    }


def _headline(results: Mapping[str, Any], planned: bool) -> str:
    numbers = headline_numbers(results)
    summary = results["overall_summary"]
    verb = "would align" if planned else "aligned"
    items = [
        (numbers["branches"], "branches"),
        (numbers["completed"], verb),
        (numbers["failed"], "would fail" if planned else "failed"),
        (numbers["not_run"], "not run"),
        (numbers["conflicts"], f"conflicts ({numbers['explained']} with their cause)"),
    ]
    if planned:
        items.append((numbers["pair_conflicts"], "branch pairs that conflict with each other"))
    spans = "".join(f"<span><b>{value}</b> {escape(label)}</span>" for value, label in items)
    tripped = summary["circuit_breaker_triggered"]
    breaker = f"open: {summary.get('circuit_breaker_reason')}" if tripped else "closed"
    meta = (
        f"{escape(str(summary['execution_timestamp']))} · {summary['total_time_seconds']} s · "
        f"circuit breaker {escape(breaker)}"
    )
    note = "<p><b>Plan</b>: predicted outcomes; no branch was moved and no backup made.</p>" if planned else ""
    return f'<div class="headline">{spans}</div><p class="muted">{meta}</p>{note}'


def _group_section(target: str, group: Mapping[str, Any], directory: Path, planned: bool) -> str:
    rows = [_branch_row(branch, directory) for branch in group["branches"]]
    rows += [
        f'<tr data-status="not_run"><td>{escape(name)}</td><td>{_badge("not_run")}</td>'
        '<td colspan="6" class="muted">not started: the circuit breaker had tripped</td></tr>'
        for name in group.get("not_run", ())
    ]
    counts = f"{group['successful']} ok, {group['failed']} {'would fail' if planned else 'failed'}"
    header = "<tr><th>Branch</th><th>Status</th><th>Action</th><th>Time s</th><th>Worker</th>"
    header += "<th>Message</th><th>Findings</th><th>Document</th></tr>"
    return (
        f'<h2 id="target-{escape(quote(target), quote=True)}">{escape(target)} <span class="muted">({counts})</span>'
        f'</h2><table class="branches">{header}{"".join(rows)}</table>'
    )


def _branch_row(branch: Mapping[str, Any], directory: Path) -> str:
    status = branch["status"]
    message = branch.get("error_message", "")
    findings = "<br>".join(_finding(finding) for finding in branch.get("findings", ()))
    document = branch.get("document")
    link = f'<a href="{escape(_relative(document, directory), quote=True)}">change document</a>' if document else ""
    return (
        f'<tr data-status="{escape(status, quote=True)}"><td>{escape(branch["branch_name"])}</td>'
        f"<td>{_badge(status)}</td><td>{escape(str(branch.get('action', '')).replace('_', ' '))}</td>"
        f'<td class="num">{branch["integration_time_seconds"]}</td><td>{escape(branch.get("worker", ""))}</td>'
        f"<td>{escape(message)}</td><td>{findings}</td><td>{link}</td></tr>"
    )


def _finding(finding: Mapping[str, Any]) -> str:
    where = ""
    if finding.get("file"):
        where = finding["file"] + (f":{finding['line']}" if finding.get("line") else "")
    label = f"{finding['severity']} {finding['code']}"
    return f"<code>{escape(where)}</code> {escape(label)}: {escape(finding['message'])}"


def _badge(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#6e7781")
    return f'<span class="status" style="background:{colour}">{escape(status.replace("_", " "))}</span>'


def _relative(path: str, directory: Path) -> str:
    return quote(Path(os.path.relpath(path, directory)).as_posix())


def _timeline(groups: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """Branch start to end per worker, as SVG bars; the breaker's trip as a vertical line."""
    branches = [branch for group in groups.values() for branch in group["branches"] if branch.get("started_at")]
    if not branches:
        return ""
    spans = [(branch, _seconds(branch["started_at"]), _seconds(branch["finished_at"])) for branch in branches]
    tripped = summary.get("circuit_breaker_tripped_at")
    moments = [moment for _, start, end in spans for moment in (start, end)]
    moments += [_seconds(tripped)] if tripped else []
    begin, span = min(moments), max(max(moments) - min(moments), 1e-3)
    workers = sorted({branch.get("worker") or "?" for branch, _, _ in spans})
    height = ROW_HEIGHT * len(workers) + 24

    def x(moment: float) -> float:
        return LABEL_WIDTH + (moment - begin) / span * TIMELINE_WIDTH

    shapes = [f'<text x="4" y="{ROW_HEIGHT * row + 15}">{escape(worker)}</text>' for row, worker in enumerate(workers)]
    for branch, start, end in spans:
        row = workers.index(branch.get("worker") or "?")
        tooltip = f"{branch['branch_name']} ({branch['target_branch']}): {branch['status']}, {end - start:.2f} s"
        shapes.append(
            f'<rect class="bar" data-branch="{escape(branch["branch_name"], quote=True)}" x="{x(start):.1f}" '
            f'y="{ROW_HEIGHT * row + 3}" width="{max(x(end) - x(start), 1.5):.1f}" height="{ROW_HEIGHT - 6}" '
            f'fill="{STATUS_COLOURS.get(branch["status"], "#6e7781")}"><title>{escape(tooltip)}</title></rect>'
        )
    if tripped:
        line = x(_seconds(tripped))
        shapes.append(
            f'<line class="breaker" x1="{line:.1f}" x2="{line:.1f}" y1="0" y2="{height - 20}" stroke="#cf222e" '
            f'stroke-width="2"/><text x="{line + 4:.1f}" y="{height - 6}" fill="#cf222e">circuit breaker tripped</text>'
        )
    shapes.append(f'<text x="{LABEL_WIDTH}" y="{height - 6}" class="muted">0 s</text>')
    shapes.append(f'<text x="{LABEL_WIDTH + TIMELINE_WIDTH - 50}" y="{height - 6}">{span:.2f} s</text>')
    width = LABEL_WIDTH + TIMELINE_WIDTH + 10
    return (
        f'<h2>Timeline</h2><svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" font-size="12">{"".join(shapes)}</svg>'
    )


def _seconds(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _causes(groups: Mapping[str, Any]) -> str:
    branches = [(target, branch) for target, group in groups.items() for branch in group["branches"]]
    rows = [
        f"<tr><td>{escape(branch['branch_name'])}</td><td>{escape(target)}</td><td><code>{escape(culprit['path'])}"
        f"</code></td><td><code>{escape(culprit['commit'][:12])}</code> {escape(culprit['subject'])}</td>"
        f"<td>{escape(culprit['author'])}</td></tr>"
        for target, branch in branches
        for culprit in branch.get("culprits", ())
    ]
    rows += [
        f'<tr class="unexplained"><td>{escape(branch["branch_name"])}</td><td>{escape(target)}</td><td>'
        + "<br>".join(f"<code>{escape(path)}</code>" for path in group["paths"])
        + f"</td><td>not explained within the budget: one of {group['candidates']} commits from "
        f"<code>{escape(group['first_commit'][:12])}</code> to <code>{escape(group['last_commit'][:12])}</code>"
        "</td><td></td></tr>"
        for target, branch in branches
        for group in branch.get("unexplained", ())
    ]
    if not rows:
        return ""
    header = "<tr><th>Branch</th><th>Target</th><th>Conflicted path</th><th>Caused by</th><th>Author</th></tr>"
    return f'<h2>Conflict causes</h2><table id="causes">{header}{"".join(rows)}</table>'


def _matrices(groups: Mapping[str, Any]) -> str:
    parts = ["<h2>Conflicts between branches</h2>"]
    for target, group in groups.items():
        matrix = group.get("conflict_matrix")
        if matrix is None:
            continue
        conflicts = matrix["conflicts"]
        checked = f"{matrix['pairs_checked']} pairs with common paths merged"
        if matrix["pairs_skipped"]:
            checked += f", {matrix['pairs_skipped']} not (limit)"
        parts.append(f'<h3>{escape(target)} <span class="muted">({checked})</span></h3>')
        if not conflicts:
            parts.append("<p>No two branches conflict with each other: any order works.</p>")
            continue
        involved = list(dict.fromkeys(name for pair in conflicts for name in pair["branches"]))
        if len(involved) <= MATRIX_LIMIT:
            parts.append(_grid(involved, conflicts))
        items = "".join(
            f"<li>{escape(pair['branches'][0])} &amp; {escape(pair['branches'][1])}: "
            f"{', '.join(f'<code>{escape(path)}</code>' for path in pair['paths'])}</li>"
            for pair in conflicts
        )
        parts.append(f"<ul>{items}</ul>")
    return "\n".join(parts)


def _grid(names: Sequence[str], conflicts: Iterable[Mapping[str, Any]]) -> str:
    paths = {frozenset(pair["branches"]): pair["paths"] for pair in conflicts}
    header = "<tr><th></th>" + "".join(f'<th title="{escape(name, quote=True)}">{index + 1}</th>'
                                      for index, name in enumerate(names)) + "</tr>"  # fmt: skip
    rows = []
    for index, name in enumerate(names):
        cells = []
        for other in names:
            hit = paths.get(frozenset((name, other))) if other != name else None
            cells.append(f'<td class="hit" title="{escape(", ".join(hit), quote=True)}">✖</td>' if hit else "<td></td>")
        rows.append(f"<tr><th>{index + 1}. {escape(name)}</th>{''.join(cells)}</tr>")
    return f'<table class="matrix">{header}{"".join(rows)}</table>'
