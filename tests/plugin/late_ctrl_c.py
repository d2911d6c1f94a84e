"""A test-only plugin (``-p tests.plugin.late_ctrl_c``): Ctrl-C at the start of the teardown of the branch
``late``, after its call passed and before the teardown report, which carries its result, is made."""

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if item.nodeid.endswith("[late]"):
        raise KeyboardInterrupt
