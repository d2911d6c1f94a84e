"""Branch results as they cross from a worker to the controller."""

from __future__ import annotations

import json

from alignment.model import Action, BranchResult, Status


def test_results_from_separate_texts_share_the_values_many_results_repeat() -> None:
    """The controller keeps every result to the end: a target, its commit and a worker are kept once."""
    texts = [
        json.dumps(
            BranchResult(
                f"feature/{number}", "main", Status.COMPLETED, 0.5, action=Action.MERGE,
                target_commit="a" * 40, old_tip=f"{number}" * 40, new_tip="c" * 40, worker="gw0",
            ).to_dict()
        )
        for number in range(2)
    ]  # fmt: skip
    first, second = (BranchResult.from_dict(json.loads(text)) for text in texts)
    assert first.target is second.target
    assert first.target_commit is second.target_commit
    assert first.worker is second.worker
    assert first.new_tip == second.new_tip
    assert (first.branch, first.old_tip, first.status) == ("feature/0", "0" * 40, Status.COMPLETED)
    assert BranchResult.from_dict(json.loads(texts[1])) == second
