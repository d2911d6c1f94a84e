"""The run setup crosses from the controller to each xdist worker as JSON text, whole and unchanged."""

from __future__ import annotations

from pathlib import Path

from alignment.config import from_mapping
from alignment.inputs import parse_branches
from alignment.session import RunSetup, set_up_run
from alignment.shard import ShardSpec
from tests.conftest import Repo, entry


def test_the_setup_survives_its_json(repo: Repo, tmp_path: Path) -> None:
    repo.commit("feature", {"app.py": "def main():\n    return 2\n"})
    settings = from_mapping(
        {"orchestration": {"check_commands": ["make check"], "targets": {"main": {"max_workers": 2}}}}
    )
    branches = parse_branches({"branches": [entry("feature", note={"kept": [1]}), entry("other")]}, "in.json")
    setup = set_up_run(
        settings, branches.select_shard(ShardSpec(1, 1)), repo.path, reports_dir=tmp_path / "r", predict=True
    )
    try:
        received = RunSetup.from_json(setup.to_json())
    finally:
        setup.discard_scratch()
    assert received == setup
    assert isinstance(received.scratch_dir, Path)
    assert isinstance(received.location.git_dir, Path)
    assert received.branches.branches[0].extra == {"note": {"kept": [1]}}
    assert received.branches.shard == setup.branches.shard
    assert received.settings.policy("main").check_commands == (("make", "check"),)
    assert received.snapshot.tips == setup.snapshot.tips
