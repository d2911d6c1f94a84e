"""Error detection's cost per combined file, and what a run pays for parsers it does not need.

``python -m bench.detection`` aligns (as a plan: nothing moves) two generated repositories with the
orchestrator, timing every ``detect`` call:

* *languages*: each branch edits the top of eight files (a 800-line Python module, C, C++, Go, Rust, Java,
  TypeScript, shell; 150-400 lines each) whose bottom the target edits: a clean merge that combines all eight,
  unique per branch. Half the branches also import a name from a module the target changed.
* *standard*: ``bench.generate``'s repository (the README's performance table; its combined files are the
  5% of branches that break Python syntax).

It prints detection milliseconds per branch and per combined file (the first branch, which loads the parsers,
separately), and, in child processes, import time and peak RSS of a plan of the standard repository with
detection's new checks on and off.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alignment.components import BranchContext, Integration
from alignment.config import from_mapping
from alignment.demo import History
from alignment.detect import ChangeErrorDetector, check_file
from alignment.document import MarkdownDocGenerator
from alignment.git import Git
from alignment.integrate import MergeOrRebaseIntegrator
from alignment.model import Finding
from alignment.orchestrator import BranchAlignmentOrchestrator
from alignment.registry import Components
from bench.generate import generate

PROJECT = Path(__file__).resolve().parent.parent
OFF = {"detect_python_compile": False, "detect_python_flakes": False, "detect_removed_names": False,
       "detect_other_languages": False}  # fmt: skip


class TimedDetector(ChangeErrorDetector):
    """The default detector, timing each call and counting the files the merge combined."""

    calls: list[tuple[float, float, int]] = []  # noqa: RUF012 - one list per process, read after the run

    def detect(self, context: BranchContext, integration: Integration) -> tuple[Finding, ...]:
        started, cpu = time.perf_counter(), time.thread_time()
        findings = super().detect(context, integration)
        combined = len(context.merged_files(integration.new_tip)) if integration.new_tip else 0
        TimedDetector.calls.append((time.perf_counter() - started, time.thread_time() - cpu, combined))
        return findings


def _lines(template: str, count: int) -> str:
    return "".join(template.format(i=i) for i in range(count))


SOURCES = {
    "code/mod.py": (PROJECT / "alignment" / "git.py").read_text(encoding="utf-8"),
    "code/lib.c": "#include <stdio.h>\n\n" + _lines("static int f{i}(int a) {{\n    return a + {i};\n}}\n\n", 60),
    "code/lib.cpp": _lines("namespace n{i} {{\nclass K {{ public: int v() const {{ return {i}; }} }};\n}}\n", 80),
    "code/main.go": "package code\n\n" + _lines("func F{i}(a int) int {{\n\treturn a + {i}\n}}\n\n", 60),
    "code/lib.rs": _lines("pub fn f{i}(a: u32) -> u32 {{\n    a + {i}\n}}\n\n", 60),
    "code/Main.java": "class Main {\n" + _lines("  int f{i}(int a) {{ return a + {i}; }}\n", 150) + "}\n",
    "code/app.ts": _lines("export function f{i}(a: number): number {{\n  return a + {i};\n}}\n\n", 60),
    "code/run.sh": "#!/bin/sh\n" + _lines("f{i}() {{\n  echo {i}\n}}\n\n", 60),
}


def languages_repo(directory: Path, branches: int) -> tuple[Path, Path]:
    """The *languages* repository and its input file."""
    history = History()
    base = dict(SOURCES)
    base["code/util.py"] = "def helper():\n    return 1\n"
    fork = history.commit("main", "base", {f"{path}": f"{text}// end\n" if not path.endswith(".py") else text
                                           for path, text in base.items()})  # fmt: skip
    entries = []
    for index in range(branches):
        own: dict[str, str | bytes | None] = {}
        for path, text in SOURCES.items():
            comment = "#" if path.endswith((".py", ".sh")) else "//"
            own[path] = f"{comment} branch {index}\n{text}" + ("" if path.endswith(".py") else "// end\n")
        if index % 2:
            own["code/user.py"] = f"from code.util import helper\n\nVALUE = helper() + {index}\n"
        history.commit(f"topic/{index:03d}", "own work", own, [fork])
        entries.append({"branch_name": f"topic/{index:03d}", "assigned_target": "main", "confidence": 0.9,
                        "tags": [], "cluster_id": 0})  # fmt: skip
    target = {path: (text + ("# target\n" if path.endswith(".py") else "// target\n")) for path, text in base.items()}
    history.commit("main", "target work", target, [fork])
    repo = directory / "languages.git"
    git = Git.init_bare(repo)
    try:
        git.fast_import(history.stream())
    finally:
        git.close()
    input_path = directory / "languages.json"
    input_path.write_text(json.dumps({"branches": entries}), encoding="utf-8")
    return repo, input_path


def timed_plan(repo: Path, input_path: Path, reports: Path, options: dict[str, Any]) -> list[tuple[float, float, int]]:
    """Detection time and combined files of each branch of a plan (one thread: times are not interleaved)."""
    TimedDetector.calls = []
    settings = from_mapping({"orchestration": {"enable_parallelization": False, "log_per_branch": False,
                                               "audit_trail_enabled": False, **options}})  # fmt: skip
    components = Components(MergeOrRebaseIntegrator(settings), TimedDetector(settings), MarkdownDocGenerator(settings))
    BranchAlignmentOrchestrator(settings, components=components, reports_dir=reports).plan(input_path, repo)
    return list(TimedDetector.calls)


def summary(label: str, calls: list[tuple[float, float, int]]) -> str:
    """Totals of a plan's detection, the first branch (which loads the parsers it needs) apart."""
    first, rest = calls[0], calls[1:]
    files = sum(count for _, _, count in rest)
    wall, cpu = sum(call[0] for call in rest), sum(call[1] for call in rest)
    per_file = f"{wall / files * 1000:.2f} ms ({cpu / files * 1000:.2f} ms CPU) per combined file" if files else ""
    return (f"{label}: {len(calls)} branches; first branch {first[0] * 1000:.1f} ms ({first[2]} files); "
            f"the others {wall / len(rest) * 1000:.2f} ms ({cpu / len(rest) * 1000:.2f} ms CPU) per branch, "
            f"{files} combined files{', ' if per_file else ''}{per_file}")  # fmt: skip


def per_language() -> list[str]:
    """CPU milliseconds of all file checks of one file per language (best of 5, parsers loaded; each call
    on new content, as each branch's merge is, so no cache answers)."""
    lines = []
    for path, text in SOURCES.items():
        comment = "#" if path.endswith((".py", ".sh")) else "//"
        versions = [f"{text}{comment} {index}\n".encode() for index in range(6)]
        check_file(path, versions[0])
        best = min(_cpu(lambda content=content, path=path: check_file(path, content)) for content in versions[1:])
        lines.append(f"  {path}: {text.count(chr(10))} lines, {best * 1000:.2f} ms CPU")
    return lines


def _cpu(action: Callable[[], object]) -> float:
    started = time.thread_time()
    action()
    return time.thread_time() - started


def child_costs(repo: Path, input_path: Path, reports: Path, options: dict[str, Any]) -> str:
    """Peak RSS (the kernel's high-water mark, ``VmHWM``) and the parser modules a plan loads, in a fresh
    process."""
    code = (
        "import json, sys; from alignment.orchestrator import BranchAlignmentOrchestrator as O; "
        f"O({{'orchestration': {{'enable_parallelization': False, **{options!r}}}}}, reports_dir={str(reports)!r})"
        f".plan({str(input_path)!r}, {str(repo)!r}); "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pyflakes', 'tree_sitter') or "
        "m.startswith('tree_sitter_')); "
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0].split()[1]; "
        "print(json.dumps([int(hwm), loaded]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT)
    rss, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    return f"peak RSS {rss / 1024:.1f} MB, parser modules loaded: {', '.join(loaded) or 'none'}"


def main() -> None:
    parser = argparse.ArgumentParser(description="error detection cost per combined file")
    parser.add_argument("--branches", type=int, default=40)
    parser.add_argument("--standard-branches", type=int, default=50)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        print("file checks per file (the first call of each language loads its parser):", *per_language(), sep="\n")
        repo, input_path = languages_repo(work, arguments.branches)
        print(summary("languages, all checks", timed_plan(repo, input_path, work / "r1", {})))
        print(summary("languages, new checks off", timed_plan(repo, input_path, work / "r2", OFF)))
        standard = generate(work / "standard", arguments.standard_branches)
        print(summary("standard, all checks", timed_plan(standard.repo, standard.input_path, work / "r3", {})))
        print(summary("standard, new checks off", timed_plan(standard.repo, standard.input_path, work / "r3", OFF)))
        for label, options in (("all checks", {}), ("new checks off", OFF)):
            costs = child_costs(standard.repo, standard.input_path, work / "r4", options)
            print(f"standard plan in a fresh process, {label}: {costs}")
        clean = generate(work / "clean", arguments.standard_branches, syntax_share=0)
        for label, options in (("all checks", {}), ("new checks off", OFF)):
            costs = child_costs(clean.repo, clean.input_path, work / "r5", options)
            print(f"standard plan without Python-breaking branches, {label}: {costs}")


if __name__ == "__main__":
    main()
