"""The HTML report: one self-contained page beside each results (or plan) JSON file.

No server and no CDN: styles, the SVG timeline and a few lines of script are inline, so the file can be
opened straight from disk or attached to a CI run. It shows the headline numbers, a table per target with
status colours, findings with file:line and links to each change document, a timeline of branch start and
end per worker (parallelism and a circuit breaker trip are visible there), the conflict causes, in a plan
the pairwise conflict matrix and, for merged shards (``alignment merge-results``), each shard's counts and
circuit breaker state. It reads only the results dict, the same one a calling program reads.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alignment.errors import counted, noun
from alignment.explain import Skipped

STATUS_COLOURS = {
    "completed": "#1a7f37",
    "failed_integration": "#cf222e",
    "failed_error_detection": "#bc4c00",
    "exception": "#8250df",
    "not_run": "#6e7781",
}
MATRIX_LIMIT = 40  # branches per target shown as a grid; more are listed as pairs only
TIMELINE_WIDTH, ROW_HEIGHT, LABEL_WIDTH = 900, 22, 150

COLLAPSE_PASSING_AT = 100  # branches in a run from which completed rows start collapsed
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1f2328}
h1{font-size:22px;overflow-wrap:anywhere}h2{font-size:18px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;white-space:nowrap}
.status{color:#fff;border-radius:4px;padding:0 6px;white-space:nowrap}.num{text-align:right}.nowrap{white-space:nowrap}
.branch{overflow-wrap:anywhere;min-width:10em}.wide{overflow-x:auto}
.headline span{display:inline-block;margin-right:18px}
.headline b{font-size:20px}code{font-size:12px}.matrix td{text-align:center;min-width:18px}
.hit{background:#ffebe9;color:#cf222e}.muted{color:#6e7781}
#controls{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #d0d7de;z-index:1}
#controls button{margin:0 6px 4px 0}#controls button[aria-pressed=true]{font-weight:bold}
#controls input[type=search]{width:16em;margin-right:12px}#shown{margin-left:12px}
#timeline{max-width:100%;height:auto}
"""
_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-status]"));
  var controls = document.getElementById("controls");
  var bar = document.getElementById("filters");
  var search = document.getElementById("search");
  var passing = document.getElementById("passing");
  var shown = document.getElementById("shown");
  var state = {status: "all"};
  var counts = {all: rows.length};
  rows.forEach(function (row) { counts[row.dataset.status] = (counts[row.dataset.status] || 0) + 1; });
  function apply() {
    var query = search.value.trim().toLowerCase(), visible = 0;
    rows.forEach(function (row) {
      var status = row.dataset.status;
      row.hidden = !((state.status === "all" || status === state.status) &&
        (!query || row.dataset.branch.toLowerCase().indexOf(query) >= 0) &&
        (passing.checked || status !== "completed" || state.status === "completed" || query));
      visible += row.hidden ? 0 : 1;
    });
    shown.textContent = "showing " + visible + " of " + rows.length + " branches";
    Array.prototype.forEach.call(bar.children, function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.filter === state.status));
    });
  }
  Object.keys(counts).forEach(function (status) {
    var button = document.createElement("button");
    button.textContent = status.replace(/_/g, " ") + " (" + counts[status] + ")";
    button.dataset.filter = status;
    button.onclick = function () { state.status = status; apply(); };
    bar.appendChild(button);
  });
  passing.checked = rows.length < Number(controls.dataset.collapseAt);
  search.oninput = apply;
  passing.onchange = apply;
  controls.hidden = false;
  apply();
})();
"""


def render_report(results: Mapping[str, Any], directory: Path) -> str:
    """The page for ``results``, with links relative to ``directory`` (where the page is written)."""
    planned = bool(results.get("planned"))
    summary = results["overall_summary"]
    groups: Mapping[str, Any] = results["orchestration_results"]
    kind = "plan" if planned else "run"
    title = f"Branch alignment {kind} {results.get('run_id', '')}".strip()
    if "shard" in results:
        title += f" (shard {results['shard']['index']}/{results['shard']['count']})"
    if "shards" in results:
        title += f": {len(results['shards']['runs'])} of {results['shards']['count']} shards merged"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        _headline(results, planned),
        _shards(results.get("shards")),
        _controls(),
    ]
    for target, group in groups.items():
        parts.append(_group_section(target, group, directory, planned))
    parts.append(_timeline(groups, summary))
    parts.append(_causes(groups))
    if planned:
        parts.append(_matrices(groups))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(part for part in parts if part) + "\n"


def _controls() -> str:
    """Status filter, search box and the completed rows' toggle (shown once the script runs)."""
    return (
        f'<div id="controls" data-collapse-at="{COLLAPSE_PASSING_AT}" hidden>'
        '<div id="filters" aria-label="filter branches by status"></div>'
        '<input id="search" type="search" placeholder="search branches" aria-label="search branches by name">'
        '<label><input id="passing" type="checkbox"> show completed rows</label><span id="shown" class="muted">'
        "</span></div>"
    )


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


def skipped_pairs(matrices: Iterable[Mapping[str, Any]]) -> str:
    """``42850 pairs not checked: beyond the limit of 2000 per target``: how many pairs of the conflict
    ``matrices`` (as the report holds them) were not merged, and why (a count per cause when there are
    several; the limit is each matrix's own), so that a partial matrix is not read as a whole one; empty when
    every pair was checked."""
    matrices = list(matrices)
    by_reason: dict[str, int] = {}
    for cause in Skipped:
        for matrix in matrices:
            if count := matrix["pairs_skipped_by_cause"][cause.value]:
                reason = cause.reason(matrix["pair_limit"])
                by_reason[reason] = by_reason.get(reason, 0) + count
    if not by_reason:
        return ""
    why = next(iter(by_reason)) if len(by_reason) == 1 else ", ".join(f"{n} {why}" for why, n in by_reason.items())
    return f"{counted(sum(by_reason.values()), 'pair')} not checked: {why}"


def _headline(results: Mapping[str, Any], planned: bool) -> str:
    numbers = headline_numbers(results)
    summary = results["overall_summary"]
    verb = "would align" if planned else "aligned"
    items = [
        (numbers["branches"], noun(numbers["branches"], "branch", "branches")),
        (numbers["completed"], verb),
        (numbers["failed"], "would fail" if planned else "failed"),
        (numbers["not_run"], "not run"),
        (numbers["conflicts"], f"{noun(numbers['conflicts'], 'conflict')} ({numbers['explained']} with their cause)"),
    ]
    if planned:
        pairs = numbers["pair_conflicts"]
        items.append(
            (pairs, f"{noun(pairs, 'branch pair that conflicts', 'branch pairs that conflict')} with each other")
        )
    spans = "".join(f"<span><b>{value}</b> {escape(label)}</span>" for value, label in items)
    if planned:
        breaker = "not applied to a plan (it predicts every branch)"
    elif summary["circuit_breaker_triggered"]:
        breaker = f"open: {summary.get('circuit_breaker_reason')}"
    else:
        breaker = "closed"
    meta = (
        f"{escape(str(summary['execution_timestamp']))} · {summary['total_time_seconds']} s · "
        f"circuit breaker {escape(breaker)}"
    )
    note = "<p><b>Plan</b>: predicted outcomes; no branch was moved and no backup made.</p>" if planned else ""
    return f'<div class="headline">{spans}</div><p class="muted">{meta}</p>{note}'


def _shards(shards: Mapping[str, Any] | None) -> str:
    """Merged shards: each shard's counts and its own circuit breaker state; shards not given, marked."""
    if shards is None:
        return ""
    count = shards["count"]
    rows = []
    for run in shards["runs"]:
        tripped = run["circuit_breaker_triggered"]
        breaker = f"open: {run['circuit_breaker_reason']}" if tripped else "closed"
        rows.append(
            f'<tr class="shard"><td>{run["index"]}/{count}</td><td><code>{escape(str(run["run_id"]))}</code></td>'
            f'<td class="num">{run["total_successful"]}</td><td class="num">{run["total_failed"]}</td>'
            f'<td class="num">{run["total_not_run"]}</td><td class="num">{run["total_time_seconds"]}</td>'
            f'<td class="breaker{" hit" if tripped else ""}">circuit breaker {escape(breaker)}</td></tr>'
        )
    rows += [
        f'<tr class="shard missing"><td>{index}/{count}</td><td colspan="6" class="hit">no results given: '
        "its branches are not in this report</td></tr>"
        for index in shards["missing"]
    ]
    header = "<tr><th>Shard</th><th>Run</th><th>Aligned</th><th>Failed</th><th>Not run</th><th>Time s</th>"
    header += "<th>Circuit breaker</th></tr>"
    return f'<h2>Shards</h2><table id="shards">{header}{"".join(rows)}</table>'


def _group_section(target: str, group: Mapping[str, Any], directory: Path, planned: bool) -> str:
    rows = [_branch_row(branch, directory) for branch in group["branches"]]
    rows += [
        f'<tr data-status="not_run" data-branch="{escape(name, quote=True)}"><td class="branch">{escape(name)}</td>'
        f"<td>{_badge('not_run')}</td>"
        '<td colspan="6" class="muted">not started: the circuit breaker had tripped</td></tr>'
        for name in group.get("not_run", ())
    ]
    counts = f"{group['successful']} ok, {group['failed']} {'would fail' if planned else 'failed'}"
    header = "<tr><th>Branch</th><th>Status</th><th>Action</th><th>Time (s)</th><th>Worker</th>"
    header += "<th>Message</th><th>Findings</th><th>Document</th></tr>"
    return (
        f'<h2 id="target-{escape(quote(target), quote=True)}">{escape(target)} <span class="muted">({counts})</span>'
        f'</h2><div class="wide"><table class="branches">{header}{"".join(rows)}</table></div>'
    )


def _branch_row(branch: Mapping[str, Any], directory: Path) -> str:
    status = branch["status"]
    message = branch.get("error_message", "")
    findings = "<br>".join(_finding(finding) for finding in branch.get("findings", ()))
    document = branch.get("document")
    link = f'<a href="{escape(_relative(document, directory), quote=True)}">document</a>' if document else ""
    name = branch["branch_name"]
    action = str(branch.get("action", "")).replace("_", " ")
    return (
        f'<tr data-status="{escape(status, quote=True)}" data-branch="{escape(name, quote=True)}">'
        f'<td class="branch">{escape(name)}</td>'
        f'<td>{_badge(status)}</td><td class="nowrap">{escape(action)}</td>'
        f'<td class="num">{branch["integration_time_seconds"]}</td>'
        f'<td class="nowrap">{escape(branch.get("worker", ""))}</td>'
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
    """Branch start to end per worker, as SVG bars, on an axis from the run's start to its end (the headline's
    total); the breaker's trip as a vertical line, labelled above the rows so it never covers the axis."""
    branches = [branch for group in groups.values() for branch in group["branches"] if branch.get("started_at")]
    if not branches:
        return ""
    spans = [(branch, _seconds(branch["started_at"]), _seconds(branch["finished_at"])) for branch in branches]
    tripped = summary.get("circuit_breaker_tripped_at")
    moments = [moment for _, start, end in spans for moment in (start, end)]
    moments += [_seconds(tripped)] if tripped else []
    begin = min([_seconds(summary["started_at"])] if summary.get("started_at") else moments)
    total = max(float(summary["total_time_seconds"]), max(moments) - begin, 1e-3)
    workers = sorted({branch.get("worker") or "?" for branch, _, _ in spans})
    top = ROW_HEIGHT  # the trip's label
    height = top + ROW_HEIGHT * len(workers) + 24
    axis = top + ROW_HEIGHT * len(workers) + 16

    def x(moment: float) -> float:
        return LABEL_WIDTH + (moment - begin) / total * TIMELINE_WIDTH

    shapes = [
        f'<text x="4" y="{top + ROW_HEIGHT * row + 15}">{escape(worker)}</text>' for row, worker in enumerate(workers)
    ]
    for branch, start, end in spans:
        row = workers.index(branch.get("worker") or "?")
        tooltip = f"{branch['branch_name']} ({branch['target_branch']}): {branch['status']}, {end - start:.2f} s"
        shapes.append(
            f'<rect class="bar" data-branch="{escape(branch["branch_name"], quote=True)}" x="{x(start):.1f}" '
            f'y="{top + ROW_HEIGHT * row + 3}" width="{max(x(end) - x(start), 1.5):.1f}" height="{ROW_HEIGHT - 6}" '
            f'fill="{STATUS_COLOURS.get(branch["status"], "#6e7781")}"><title>{escape(tooltip)}</title></rect>'
        )
    if tripped:
        line = x(_seconds(tripped))
        anchor = "end" if line > LABEL_WIDTH + TIMELINE_WIDTH / 2 else "start"
        label_x = line - 4 if anchor == "end" else line + 4
        shapes.append(
            f'<line class="breaker" x1="{line:.1f}" x2="{line:.1f}" y1="4" y2="{axis - 12}" stroke="#cf222e" '
            f'stroke-width="2"/><text x="{label_x:.1f}" y="14" fill="#cf222e" text-anchor="{anchor}">'
            f"circuit breaker tripped at {_seconds(tripped) - begin:.2f} s</text>"
        )
    end_x = LABEL_WIDTH + TIMELINE_WIDTH
    shapes.append(
        f'<line x1="{LABEL_WIDTH}" x2="{end_x}" y1="{axis - 12}" y2="{axis - 12}" stroke="#d0d7de"/>'
        f'<text x="{LABEL_WIDTH}" y="{axis}" class="muted">0 s (run start)</text>'
        f'<text x="{end_x}" y="{axis}" text-anchor="end">{total:.2f} s (run end)</text>'
    )
    width = LABEL_WIDTH + TIMELINE_WIDTH + 10
    return (
        f'<h2>Timeline</h2><svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-size="12">{"".join(shapes)}</svg>'
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
        checked = f"{counted(matrix['pairs_checked'], 'pair')} with common paths merged"
        if skipped := skipped_pairs([matrix]):
            checked += f"; {skipped}"
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
