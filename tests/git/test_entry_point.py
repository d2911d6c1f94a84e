"""The spec's run_alignment_for_branch: its exact signature and its promise never to raise for valid input."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from alignment.config import Settings
from alignment.detect import ChangeErrorDetector
from alignment.document import MarkdownDocGenerator
from alignment.errors import RepositoryError
from alignment.integrate import MergeOrRebaseIntegrator
from alignment.pipeline import run_alignment_for_branch
from tests.conftest import Repo

CONFIG = Settings()
STEPS = (MergeOrRebaseIntegrator(CONFIG), ChangeErrorDetector(CONFIG), MarkdownDocGenerator(CONFIG))


def test_the_signature_is_the_specs() -> None:
    assert list(inspect.signature(run_alignment_for_branch).parameters) == [
        "branch_name",
        "target_branch",
        "repo_path",
        "integration_utility",
        "error_detector",
        "doc_generator",
    ]


def test_aligns_one_branch_with_default_settings(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    repo.commit("feature/x", {"x.txt": "x\n"}, parent=repo.tip("main"))
    repo.commit("main", {"m.txt": "m\n"})
    result = run_alignment_for_branch("feature/x", "main", str(repo.path), *STEPS)
    assert result["status"] == "completed"
    assert set(result) >= {"branch_name", "status", "integration_time_seconds", "errors_detected", "changes_summary"}
    assert Path(str(result["changes_summary"])).is_relative_to(tmp_path / "reports" / "runs")
    assert repo.exists("backup-feature/x-pre-align")


def test_a_failure_is_a_result(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_alignment_for_branch("nope", "main", str(repo.path), *STEPS)
    assert (result["status"], result["errors_detected"]) == ("failed_integration", ["branch_not_found"])


def test_an_unexpected_error_while_planning_is_an_exception_result(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def broken_plan(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("alignment.pipeline.set_up_run", broken_plan)
    result = run_alignment_for_branch("x", "main", str(repo.path), *STEPS)
    assert (result["status"], result["error_message"]) == ("exception", "OSError: disk full")


def test_invalid_input_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a valid branch name"):
        run_alignment_for_branch("bad name", "main", str(tmp_path), *STEPS)
    with pytest.raises(RepositoryError):
        run_alignment_for_branch("ok", "main", str(tmp_path), *STEPS)


@pytest.mark.parametrize(
    ("position", "value", "message"),
    [
        (0, 7, "branch_name must be a str, not int"),
        (0, b"feature", "branch_name must be a str, not bytes"),
        (1, None, "target_branch must be a str, not NoneType"),
        (2, 5, "repo_path must be a str or an os.PathLike, not int"),
        (3, None, "integration_utility must be an object with IntegrationUtility's method, not NoneType"),
        (4, STEPS[0], "error_detector must be an object with ErrorDetector's method, not MergeOrRebaseIntegrator"),
        (5, "docs", "doc_generator must be an object with DocGenerator's method, not str"),
    ],
)
def test_an_argument_of_the_wrong_type_is_a_type_error_naming_it(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, position: int, value: object, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    repo.commit("feature", {"x.txt": "x\n"}, parent=repo.tip("main"))
    arguments: list[object] = ["feature", "main", str(repo.path), *STEPS]
    arguments[position] = value
    before = repo.git("for-each-ref")
    with pytest.raises(TypeError) as raised:
        run_alignment_for_branch(*arguments)  # type: ignore[arg-type]
    assert str(raised.value) == message
    assert repo.git("for-each-ref") == before
    assert not (tmp_path / "reports").exists()


def test_a_repository_path_may_be_a_path(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    repo.commit("feature", {"x.txt": "x\n"}, parent=repo.tip("main"))
    assert run_alignment_for_branch("feature", "main", repo.path, *STEPS)["status"] == "completed"  # type: ignore[arg-type]
