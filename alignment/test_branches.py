"""The branches of ``--input``, one test each: ``pytest alignment/ -n 4 --input FILE --repo PATH``.

The ``branch_alignment`` fixture (in ``plugins/``) has already checked the branch and created its backup;
its teardown documents a failure and restores anything moved. This module never imports pytest.
"""

from alignment.pipeline import BranchAlignment


def test_branch(branch_alignment: BranchAlignment) -> None:
    """The steps of ``BranchAlignment.run_steps``: integrate the target, detect errors, document, move."""
    branch_alignment.run_steps()
