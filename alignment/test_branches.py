"""The branches of ``--input``, one test each: ``pytest alignment/ -n 4 --input FILE --repo PATH``.

The ``branch_alignment`` fixture (in ``plugins/``) has already checked the branch and created its backup;
its teardown documents a failure and restores anything moved. This module never imports pytest.
"""

from alignment.pipeline import BranchAlignment


def test_branch(branch_alignment: BranchAlignment) -> None:
    """Integrate the target (077), detect errors (076), document (078), then move the branch."""
    branch_alignment.integrate()
    branch_alignment.detect()
    branch_alignment.document()
    branch_alignment.finalize()
