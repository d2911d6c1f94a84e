"""Check commands as processes: their output is bounded, and no process of theirs outlives the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from alignment.processes import Completed, ProcessTimeout, run_check
from tests.conftest import alive

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor is Linux only")

# A check that starts a child in its own process group and a daemon that escapes it (``setsid``), writes
# their pids and its own, then waits (or, with ``exit``, leaves them behind at once).
FAMILY = """
import os, sys, time
def spawn(escape):
    pid = os.fork()
    if pid == 0:
        if escape:
            os.setsid()
        time.sleep(1001)
        os._exit(0)
    return pid
pids = [os.getpid(), spawn(False), spawn(True)]
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(" ".join(map(str, pids)))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
if sys.argv[2] == "wait":
    time.sleep(1001)
"""


def _gone(pids: list[int], within: float = 30.0) -> bool:
    """Every pid ended (a killed process may take a moment to be reaped by whoever inherited it)."""
    ends = time.monotonic() + within
    while any(alive(pid) for pid in pids) and time.monotonic() < ends:
        time.sleep(0.05)
    return not any(alive(pid) for pid in pids)


@pytest.fixture
def family(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """The family check's argv without its mode, and the file where it writes its pids; kills leftovers."""
    script = tmp_path / "family.py"
    script.write_text(FAMILY, encoding="utf-8")
    pids = tmp_path / "pids.txt"
    yield [sys.executable, str(script), str(pids)], pids
    if pids.exists():
        for pid in map(int, pids.read_text().split()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _check(
    argv: list[str], tmp_path: Path, timeout: float = 60, output_limit: int = 1024, memory_limit_mb: int | None = None
) -> Completed:
    return run_check(
        argv, cwd=tmp_path, timeout=timeout, env=os.environ, memory_limit_mb=memory_limit_mb, output_limit=output_limit
    )


def test_only_the_tail_of_a_checks_output_is_kept(tmp_path: Path) -> None:
    """A check printing without end took the run to 4.4 GB: its output was all held in memory."""
    printer = "import sys\nfor _ in range(800): sys.stdout.write('x' * 65535 + '\\n')\nprint('the end')\nsys.exit(1)"
    tracemalloc.start()
    try:
        done = run_check(
            [sys.executable, "-c", printer],
            cwd=tmp_path,
            timeout=60,
            env=os.environ,
            memory_limit_mb=None,
            output_limit=4096,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done.returncode == 1
    assert len(done.stdout) == 4096
    assert done.stdout.endswith(b"x\nthe end\n")
    assert done.dropped == 800 * 65536 + len("the end\n") - 4096
    assert peak < 8 * 1024 * 1024  # the output was 50 MB


def test_a_daemon_a_check_leaves_behind_is_killed_when_the_check_ends(
    tmp_path: Path, family: tuple[list[str], Path]
) -> None:
    argv, pids = family
    done = _check([*argv, "exit"], tmp_path)
    assert done.returncode == 0
    assert _gone([int(pid) for pid in pids.read_text().split()])


def test_a_timed_out_check_takes_its_escaped_daemon_along(tmp_path: Path, family: tuple[list[str], Path]) -> None:
    """``setsid sleep 1001 &`` in a check survived its timeout: it had left the process group."""
    argv, pids = family
    with pytest.raises(ProcessTimeout):
        _check([*argv, "wait"], tmp_path, timeout=8)  # two interpreters start first: 2-3 s each on a busy machine
    assert _gone([int(pid) for pid in pids.read_text().split()])


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, pytest.fail.Exception], ids=["ctrl-c", "branch-timeout"])
def test_an_interrupted_check_is_killed_with_its_whole_tree(
    tmp_path: Path, family: tuple[list[str], Path], interruption: type[BaseException]
) -> None:
    """Ctrl-C, or the branch's timeout (pytest-timeout's signal raises ``Failed``, a ``BaseException`` but no
    ``KeyboardInterrupt``), while a check runs: nothing of it is left."""
    argv, pids = family

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if pids.exists():
            signal.setitimer(signal.ITIMER_REAL, 0)
            raise interruption("interrupted")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
    try:
        with pytest.raises(interruption):
            _check([*argv, "wait"], tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _gone([int(pid) for pid in pids.read_text().split()])


# A check that stops its supervisor (SIGSTOP): stopping the check then waits in vain, and can be interrupted.
STOPS_ITS_SUPERVISOR = """
import os, signal, sys, time
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(str(os.getppid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
os.kill(os.getppid(), signal.SIGSTOP)
time.sleep(1001)
"""


def test_a_check_interrupted_again_while_it_is_stopped_is_still_killed_and_reaped(tmp_path: Path) -> None:
    """A second interruption (the branch's timeout signal right after the check's own timeout, both from the
    branch's deadline) came while the check was being stopped: it left the supervisor unreaped, or running."""
    script = tmp_path / "stops_its_supervisor.py"
    script.write_text(STOPS_ITS_SUPERVISOR, encoding="utf-8")
    pid_file = tmp_path / "supervisor.pid"
    raised = 0

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if pid_file.exists() and raised < 2:  # once while the check runs, once while it is being stopped
            raised += 1
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
    try:
        with pytest.raises(KeyboardInterrupt):
            _check([sys.executable, str(script), str(pid_file)], tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    supervisor = int(pid_file.read_text())
    try:
        assert raised == 2
        assert not Path(f"/proc/{supervisor}").exists(), "the supervisor was left running or unreaped"
    finally:
        if Path(f"/proc/{supervisor}").exists():
            os.killpg(supervisor, signal.SIGKILL)
            os.waitpid(supervisor, 0)


def test_a_killed_worker_takes_its_checks_along(tmp_path: Path, family: tuple[list[str], Path]) -> None:
    """SIGKILL of the process running a check (an xdist worker) left the check running with no time limit."""
    argv, pids = family
    worker = textwrap.dedent(f"""
        import os
        from alignment.processes import run_check
        run_check({[*argv, "wait"]!r}, cwd={str(tmp_path)!r}, timeout=600, env=os.environ,
                  memory_limit_mb=None, output_limit=1024)
    """)
    process = subprocess.Popen([sys.executable, "-c", worker])
    try:
        ends = time.monotonic() + 60
        while not pids.exists() and time.monotonic() < ends and process.poll() is None:
            time.sleep(0.05)
        assert pids.exists()
        process.kill()
    finally:
        process.wait()
    assert _gone([int(pid) for pid in pids.read_text().split()])


def test_a_check_runs_under_the_memory_limit(tmp_path: Path) -> None:
    limited = _check([sys.executable, "-c", "bytearray(400 * 1024 * 1024)"], tmp_path, memory_limit_mb=200)
    assert limited.returncode == 1
    assert b"MemoryError" in limited.stderr


def test_a_check_that_reserves_much_address_space_starts_under_the_memory_limit(tmp_path: Path) -> None:
    """node and java reserve gigabytes they never touch (``PROT_NONE``): the limit bounds memory written to,
    not address space, or they could not start under the default and every such check would check nothing."""
    reserve = "import mmap; mmap.mmap(-1, 4 << 30, prot=0); print('started')"
    done = _check([sys.executable, "-c", reserve], tmp_path, memory_limit_mb=200)
    assert (done.returncode, done.stdout) == (0, b"started\n"), done.stderr
