"""The run setup: it refuses a repository git refuses, and crosses from the controller to each xdist worker as
JSON text, whole and unchanged."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from alignment.config import from_mapping, load_settings
from alignment.errors import RepositoryError, UsageProblem
from alignment.git import Git
from alignment.inputs import parse_branches
from alignment.orchestrator import BranchAlignmentOrchestrator
from alignment.session import RunSetup, set_up_run
from alignment.shard import ShardSpec
from tests.conftest import Repo, entry, new_repo
from tests.remotes import make_origin


def test_the_setup_survives_its_json(repo: Repo, tmp_path: Path) -> None:
    repo.commit("feature", {"app.py": "def main():\n    return 2\n"})
    settings = from_mapping(
        {"orchestration": {"check_commands": ["git status"], "targets": {"main": {"max_workers": 2}}}}
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
    assert received.settings.policy("main").check_commands == (("git", "status"),)
    assert received.snapshot.tips == setup.snapshot.tips


def test_a_repo_path_of_the_config_file_is_relative_to_the_file(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``repo_path: .`` kept in the repository aligns that repository, not the one the run starts in."""
    repo.commit("feature", {"app.py": "x = 1\n"})
    (repo.path / "alignment.yaml").write_text("orchestration:\n  repo_path: .\n", encoding="utf-8")
    elsewhere = new_repo(tmp_path / "harness")
    monkeypatch.chdir(elsewhere.path)
    settings = load_settings(repo.path / "alignment.yaml")
    assert settings.repo_path is not None
    branches = parse_branches({"branches": [entry("feature")]}, "in.json")
    setup = set_up_run(settings, branches, settings.repo_path, reports_dir=tmp_path / "r", predict=True)
    setup.discard_scratch()
    assert setup.location.common_dir == (repo.path / ".git").resolve()
    assert not (elsewhere.path / ".git" / "objects" / "info" / "commit-graph").exists()


def test_a_config_naming_another_machines_repository_serves_a_run_that_names_its_own(
    repo: Repo, tmp_path: Path, make_input: Callable[..., Path]
) -> None:
    """A shared file's ``repo_path`` that this machine lacks is checked only when no ``repo_path=`` (or
    ``--repo``) overrides it, and then named with the key and the path it came to."""
    repo.commit("feature", {"app.py": "x = 1\n"}, parent="main")
    config = tmp_path / "alignment.yaml"
    config.write_text("orchestration:\n  repo_path: /nonexistent/elsewhere\n", encoding="utf-8")
    orchestrator = BranchAlignmentOrchestrator(config, reports_dir=tmp_path / "reports")
    plan = orchestrator.plan(make_input("feature"), repo.path)
    (predicted,) = plan["orchestration_results"]["main"]["branches"]
    assert (predicted["branch_name"], predicted["status"]) == ("feature", "completed")
    wanted = rf"^{re.escape(str(config))}: orchestration\.repo_path: no such directory: /nonexistent/elsewhere$"
    with pytest.raises(UsageProblem, match=wanted):
        orchestrator.plan(make_input("feature"))


@pytest.mark.parametrize("trusted", [None, "exact", "*"])
def test_a_repository_of_another_user_is_refused_as_git_refuses_it(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted: str | None
) -> None:
    """Its configuration would otherwise be obeyed, here a command that runs on fetch; a ``safe.directory``
    setting that trusts it (its path, or ``*``) lets it through, as it does for git."""
    origin = make_origin(repo, tmp_path)
    marker = tmp_path / "ran"
    origin.clone.git("config", "remote.origin.uploadpack", f"touch {marker}; git-upload-pack")
    top = origin.clone.path.resolve()
    if trusted is not None:
        config = tmp_path / "global.gitconfig"
        trusting = [top, origin.bare.path.resolve()] if trusted == "exact" else [trusted]  # the fetch: the remote too
        config.write_text("[safe]\n" + "".join(f"\tdirectory = {path}\n" for path in trusting))
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_TEST_ASSUME_DIFFERENT_OWNER", "1")  # what git's own tests use for a foreign owner
    settings = from_mapping({"orchestration": {"remote": "origin"}})
    branches = parse_branches({"branches": [entry("feature-a")]}, "in.json")
    if trusted is None:
        fix = re.escape(f"`git config --global --add safe.directory {top}`")
        with pytest.raises(
            RepositoryError, match=f"^{re.escape(str(origin.clone.path))}: owned by another user.*{fix}$"
        ):
            set_up_run(settings, branches, origin.clone.path, reports_dir=tmp_path / "r", predict=True)
        assert not marker.exists()
    else:
        set_up_run(settings, branches, origin.clone.path, reports_dir=tmp_path / "r", predict=True).discard_scratch()
        assert marker.exists()


def test_a_folder_inside_a_repository_is_refused_naming_its_top(repo: Repo, tmp_path: Path) -> None:
    """Not "not a git repository" (git works there): the repository around it, and what to give instead."""
    inside = repo.path / "sub"
    inside.mkdir()
    branches = parse_branches({"branches": [entry("feature")]}, "in.json")
    expected = f"{inside} is inside the repository at {repo.path.resolve()}: give its top-level directory"
    with pytest.raises(RepositoryError, match=f"^{re.escape(expected)}$"):
        set_up_run(from_mapping({}), branches, inside, reports_dir=tmp_path / "r", predict=True)
    with pytest.raises(RepositoryError, match="not a git repository"):
        set_up_run(from_mapping({}), branches, tmp_path, reports_dir=tmp_path / "r", predict=True)


def test_the_snapshot_asks_git_about_each_targets_listed_branches_only(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Set-up cost follows the listed branches, not every ref times every target: each target's ancestry calls
    name only its listed branches' refs (no backup, no unlisted branch, no missing one), with the same result."""
    old = repo.tip("main")
    repo.commit("main", {"n.txt": "1\n"})
    repo.branch("release", old)
    for name in ("behind", "backup-behind-pre-align", "unlisted"):
        repo.branch(name, old)
    repo.commit("ahead", {"a.txt": "a\n"}, parent=repo.tip("main"))
    repo.commit("diverged", {"d.txt": "d\n"}, parent=old)
    repo.branch("r-up", "main")
    asked: list[tuple[str, tuple[str, ...]]] = []
    run = Git._run

    def spying(self: Git, *args: str, **options: Any) -> Any:
        if args[0] == "for-each-ref" and args[2].startswith(("--contains=", "--merged=")):
            asked.append((args[2].split("=")[0], args[3:]))
        return run(self, *args, **options)

    monkeypatch.setattr(Git, "_run", spying)
    listed = [entry(name) for name in ("ahead", "behind", "diverged", "gone")] + [entry("r-up", "release")]
    setup = set_up_run(from_mapping({}), parse_branches({"branches": listed}, "in.json"), repo.path,
                       reports_dir=tmp_path / "r", predict=True)  # fmt: skip
    setup.discard_scratch()
    assert (setup.snapshot.up_to_date, setup.snapshot.behind) == ({"ahead", "r-up"}, {"behind"})
    main_refs = ("refs/heads/ahead", "refs/heads/behind", "refs/heads/diverged")
    expected = [
        (relation, refs) for refs in (main_refs, ("refs/heads/r-up",)) for relation in ("--contains", "--merged")
    ]
    assert sorted(asked) == sorted(expected)
