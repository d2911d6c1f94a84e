"""A test-only plugin (``-p tests.plugin.ctrl_c_ending_workers``): Ctrl-C in the controller just as it has
ended its xdist workers (every branch finished), before it publishes the results."""

from typing import Any

import pytest


@pytest.hookimpl(optionalhook=True)
def pytest_testnodeready(node: Any) -> None:
    nodemanager = node.config.pluginmanager.getplugin("dsession").nodemanager
    end = nodemanager.teardown_nodes
    if end.__name__ == "end_then_ctrl_c":
        return  # the other worker's node already set it

    def end_then_ctrl_c() -> None:
        nodemanager.teardown_nodes = end  # once: xdist ends them again at its own session finish
        end()
        raise KeyboardInterrupt

    nodemanager.teardown_nodes = end_then_ctrl_c
