"""What the scheduler takes from pytest-xdist beyond its documented hooks, checked against the installed one.

``plugins/scheduler.py`` implements xdist's ``Scheduling`` protocol and drives its worker controllers, which
are internals: pyproject.toml pins the xdist releases it was written for. A new xdist fails here, with the
name of what changed, rather than in the middle of a run.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from pathlib import Path

from packaging.requirements import Requirement
from xdist.dsession import DSession
from xdist.scheduler.protocol import Scheduling
from xdist.workermanage import WorkerController

from plugins.scheduler import TargetScheduling

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def xdist_requirement() -> Requirement:
    dependencies = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    (line,) = [line for line in dependencies if Requirement(line).name == "pytest-xdist"]
    return Requirement(line)


def test_the_installed_xdist_is_within_the_pinned_range() -> None:
    requirement = xdist_requirement()
    version = importlib.metadata.version("pytest-xdist")
    assert requirement.specifier.contains(version), (
        f"pytest-xdist {version} is outside {requirement.specifier}: plugins/scheduler.py relies on xdist's "
        "internals; check the ones this module tests, then widen the pin in pyproject.toml"
    )
    assert "99" not in requirement.specifier, "the pin needs an upper bound"


def test_the_scheduler_implements_xdists_scheduling_protocol() -> None:
    wanted = {name for name in vars(Scheduling) if not name.startswith("_")}
    assert wanted <= set(vars(TargetScheduling)), f"xdist's Scheduling protocol now asks for {sorted(wanted)}"


def test_the_worker_controller_and_the_session_have_what_the_scheduler_uses() -> None:
    assert isinstance(inspect.getattr_static(WorkerController, "shutting_down"), property)
    assert list(inspect.signature(WorkerController.send_runtest_some).parameters) == ["self", "indices"]
    assert list(inspect.signature(WorkerController.shutdown).parameters) == ["self"]
    assert "if self.shouldstop:" in inspect.getsource(DSession.pytest_runtestloop)  # set by the controller on a trip
