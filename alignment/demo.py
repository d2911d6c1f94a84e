"""The built-in demo: a throwaway repository with 20 branches over three targets, and its input file.

The branches cover what a real run meets: clean merges, conflicts (content and add/add), a merge that
breaks Python syntax although both sides compile, branches already up to date or only behind, a file both a
target and its branch edit whose merge carries the target's trailing whitespace (a warning, marked as
already on the target), and two branches that each merge cleanly but conflict with each other (what a
plan's conflict matrix shows). ``expected_statuses.json`` beside the input says the status each branch
should get (the input itself has only the input format's keys, so the demo shows no warning).

``History`` writes ``git fast-import`` streams with fixed dates; the benchmark's generator builds on it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alignment.git import Git
from alignment.scratch import hold, is_alive

_IDENT = b"Demo Author <demo@example.com>"
DEMO_PREFIX = "alignment-demo-"
EXPECTED_FILE = "expected_statuses.json"


def new_demo_dir(temporary_dir: Path | None = None) -> Path:
    """A directory for this demo run, held (like a run's scratch) until ``scratch.release``.

    The directories of earlier demos whose run has ended are removed first: demos do not pile up in the
    temporary directory, and the latest demo's repository stays there to look at until the next demo.
    """
    base = temporary_dir or Path(tempfile.gettempdir())
    for old in base.glob(f"{DEMO_PREFIX}*"):
        if (old / "alive").exists() and not is_alive(old):
            shutil.rmtree(old, ignore_errors=True)
    directory = Path(tempfile.mkdtemp(prefix=DEMO_PREFIX, dir=base))
    hold(directory)
    return directory


@dataclass
class History:
    """Builds a ``git fast-import`` stream; ``commit`` returns a mark usable as a parent."""

    start_time: int = 1_700_000_000
    _chunks: list[bytes] = field(default_factory=list)
    _marks: int = 0

    def commit(
        self,
        branch: str,
        message: str,
        files: Mapping[str, str | bytes | None],
        parents: Sequence[int] = (),
    ) -> int:
        """A commit on ``branch`` with ``files`` changed (None deletes); the first parent's tree is the base."""
        self._marks += 1
        when = f"{self.start_time + self._marks * 60} +0000".encode()
        text = message.encode()
        chunk = [
            b"commit refs/heads/" + branch.encode(),
            f"mark :{self._marks}".encode(),
            b"author " + _IDENT + b" " + when,
            b"committer " + _IDENT + b" " + when,
            f"data {len(text)}".encode(),
            text,
        ]
        chunk += [f"from :{parents[0]}".encode()] if parents else []
        chunk += [f"merge :{parent}".encode() for parent in parents[1:]]
        for path, content in files.items():
            if content is None:
                chunk.append(b"D " + path.encode())
                continue
            data = content.encode() if isinstance(content, str) else content
            chunk += [b"M 100644 inline " + path.encode(), f"data {len(data)}".encode(), data]
        self._chunks.append(b"\n".join(chunk) + b"\n\n")
        return self._marks

    def branch(self, name: str, mark: int) -> None:
        """Point ``name`` at the commit ``mark`` (a branch with no commits of its own)."""
        self._chunks.append(f"reset refs/heads/{name}\nfrom :{mark}\n\n".encode())

    def stream(self) -> bytes:
        return b"".join(self._chunks) + b"done\n"


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


APP = _lines("def greet(name):", "    return f'hello {name}'", "", "", "def version():", "    return '1.0'")
APP_MAIN = APP.replace("'1.0'", "'1.1'")
# Each side of this file compiles; merged, the target's new function lands inside the branch's list.
PIPELINE = _lines(
    "# steps of the demo pipeline",
    "START = None",
    "'fetch',",
    "'build',",
    "'test',",
    "'package',",
    "'publish',",
    "END = None",
)
PIPELINE_BRANCH = PIPELINE.replace("START = None", "START = [").replace("END = None", "]")
PIPELINE_MAIN = PIPELINE.replace("'test',\n", "'test',\ndef helper():\n    return 0\n")
PARAMS = _lines("learning_rate: 0.1", "epochs: 10", "batch_size: 32")
NOTES = _lines("# Notes", "", "Nothing yet.")
BASE_FILES = {
    "README.md": _lines("# Demo project", "", "Version 1.0 of the demo."),
    "src/app.py": APP,
    "src/pipeline.py": PIPELINE,
    "config/settings.json": json.dumps({"debug": False, "workers": 2}, indent=2) + "\n",
    "science/model.py": _lines("def predict(x):", "    return 2 * x"),
    "science/params.yaml": PARAMS,
    "tools/deploy.sh": _lines("#!/bin/sh", "echo deploying"),
    "docs/guide.md": _lines("# Guide", "", "Run the app."),
    "science/NOTES.md": NOTES,
}


@dataclass(frozen=True)
class DemoBranch:
    name: str
    target: str
    expected: str
    files: Mapping[str, str] = field(default_factory=dict)


def _branches() -> list[DemoBranch]:
    ok, conflict, broken = "completed", "failed_integration", "failed_error_detection"
    return [
        DemoBranch("feature/login", "main", ok, {"src/login.py": _lines("def login(user):", "    return True")}),
        DemoBranch("feature/auth", "main", conflict, {"src/auth.py": _lines("TOKEN_TTL = 60")}),
        DemoBranch(
            "feature/logging",
            "main",
            ok,
            {"docs/guide.md": _lines("# Guide", "", "Run the app.", "", "Logs go to stderr.")},
        ),
        DemoBranch("feature/pipeline-list", "main", broken, {"src/pipeline.py": PIPELINE_BRANCH}),
        DemoBranch(
            "bugfix/readme-version",
            "main",
            conflict,
            {"README.md": _lines("# Demo project", "", "Version 1.0.1 of the demo.")},
        ),
        DemoBranch("feature/metrics", "main", ok, {"src/metrics.py": _lines("COUNTERS = {}")}),
        DemoBranch("feature/config-logging", "main", ok, {"config/logging.json": '{"level": "INFO"}\n'}),
        DemoBranch("release/hotfix-1", "main", ok),
        DemoBranch("chore/deps-bump", "main", ok),
        DemoBranch("feature/research", "scientific", ok, {"science/experiment.py": _lines("RUNS = 3")}),
        DemoBranch(
            "research/new-model",
            "scientific",
            ok,
            {
                "science/model.py": _lines(
                    "def predict(x):", "    return 2 * x", "", "", "def train():", "    return None"
                )
            },
        ),
        DemoBranch(
            "research/params-tuning", "scientific", conflict, {"science/params.yaml": PARAMS.replace("0.1", "0.05")}
        ),
        DemoBranch("research/dataset-v2", "scientific", ok, {"data/dataset.json": '{"rows": 100}\n'}),
        DemoBranch(  # edits the notes the target appends a line with trailing whitespace to: the merged file
            "research/notebook",  # gets a warning, marked as already on the target
            "scientific",
            ok,
            {
                "notebooks/README.md": _lines("Notebooks go here."),
                "science/NOTES.md": NOTES.replace("# Notes", "# Lab notes"),
            },
        ),
        DemoBranch("research/plots", "scientific", ok, {"science/plots.py": _lines("def plot():", "    pass")}),
        DemoBranch("ops/ci-matrix", "orchestration-tools", ok, {"tools/ci.yaml": _lines("python: [3.10, 3.11]")}),
        DemoBranch(
            "ops/deploy-script",
            "orchestration-tools",
            ok,
            {"tools/deploy.sh": _lines("#!/bin/sh", "set -eu", "echo deploying")},
        ),
        DemoBranch(  # ops/docker and ops/monitoring each merge cleanly, but pin different versions: a plan's
            "ops/docker",  # conflict matrix shows that they conflict with each other
            "orchestration-tools",
            ok,
            {"tools/Dockerfile": _lines("FROM python:3.11"), "tools/versions.toml": _lines('python = "3.11"')},
        ),
        DemoBranch(
            "ops/monitoring",
            "orchestration-tools",
            ok,
            {"tools/monitor.toml": _lines("interval = 30"), "tools/versions.toml": _lines('python = "3.12"')},
        ),
        DemoBranch("ops/aligned-already", "orchestration-tools", ok),
    ]


def build_demo(directory: Path) -> tuple[Path, Path]:
    """Create ``directory/demo-repo.git`` and ``directory/categorized_branches.json``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    history = History()
    root = history.commit("main", "Initial import", BASE_FILES)
    scientific = history.commit(
        "scientific",
        "Scientific: tune parameters",
        {
            "science/params.yaml": PARAMS.replace("0.1", "0.2"),
            "science/NOTES.md": NOTES + "Results are preliminary.  \n",
        },
        [root],
    )
    tools = history.commit("orchestration-tools", "Tools: add a Makefile", {"tools/Makefile": "all:\n\ttrue\n"}, [root])
    history.branch("chore/deps-bump", root)
    main_1 = history.commit(
        "main",
        "Bump version to 1.1",
        {"src/app.py": APP_MAIN, "README.md": BASE_FILES["README.md"].replace("1.0", "1.1")},
        [root],
    )
    main_2 = history.commit(
        "main",
        "Add auth settings and a pipeline helper",
        {"src/auth.py": _lines("TOKEN_TTL = 3600"), "src/pipeline.py": PIPELINE_MAIN},
        [main_1],
    )
    bases = {"main": root, "scientific": root, "orchestration-tools": root}
    tips = {"main": main_2, "scientific": scientific, "orchestration-tools": tools}
    for branch in _branches():
        if branch.name == "chore/deps-bump":
            continue
        if not branch.files:
            history.commit(
                branch.name, f"{branch.name}: own work", {f"notes/{branch.name}.txt": "done\n"}, [tips[branch.target]]
            )
            continue
        history.commit(branch.name, f"{branch.name}: changes", branch.files, [bases[branch.target]])
    repo = directory / "demo-repo.git"
    git = Git.init_bare(repo)
    try:
        git.set_identity("Alignment Demo", "demo@example.com")
        git.fast_import(history.stream())
    finally:
        git.close()
    entries = [
        {
            "branch_name": branch.name,
            "assigned_target": branch.target,
            "confidence": 0.9,
            "tags": [],
            "cluster_id": index % 3,
        }
        for index, branch in enumerate(_branches())
    ]
    input_path = directory / "categorized_branches.json"
    input_path.write_text(json.dumps({"branches": entries}, indent=2) + "\n", encoding="utf-8")
    expected = {branch.name: branch.expected for branch in _branches()}
    (directory / EXPECTED_FILE).write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    return repo, input_path
