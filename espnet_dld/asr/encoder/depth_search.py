"""Greedy backward elimination of encoder blocks: the search behind depth profiles.

Which k of N blocks to keep at depth k is measured, not assumed: start from
all N blocks and repeatedly remove the block whose removal hurts a dev
criterion least.  This costs N(N+1)/2 - 1 evaluations instead of the 2^N
subsets, and gives nested subsets (depth k-1 keeps k-1 of depth k's
blocks), so moving between neighbouring depths changes one block.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

#: a criterion value: a number, or a tuple compared lexicographically (e.g. (wer, ctc_loss))
Score = Any


def greedy_backward_elimination(
    num_blocks: int, evaluate: Callable[[List[int]], Score]
) -> Tuple[Dict[int, List[int]], List[Dict[str, Any]]]:
    """Nested block subsets for every depth N..1, lower criterion being better.

    ``evaluate(layers)`` scores a sorted list of 0-based block indices.  At
    each step every remaining block is tried out; the one whose removal gives
    the lowest score goes (ties: the lowest block index).  Returns the
    profile ``{k: blocks}`` and, per step, ``{"depth": k, "removed": b,
    "candidates": {b': score without b'}}``.
    """
    if not isinstance(num_blocks, int) or isinstance(num_blocks, bool) or num_blocks < 1:
        raise ValueError(f"num_blocks must be a positive integer, got {num_blocks!r}")
    current = list(range(num_blocks))
    profile: Dict[int, List[int]] = {num_blocks: list(current)}
    steps: List[Dict[str, Any]] = []
    while len(current) > 1:
        candidates = {b: evaluate([i for i in current if i != b]) for b in current}
        removed = best_candidate(candidates)
        current.remove(removed)
        profile[len(current)] = list(current)
        steps.append({"depth": len(current), "removed": removed, "candidates": candidates})
    return profile, steps


def best_candidate(candidates: Dict[int, Score]) -> int:
    """The block with the lowest score; ties go to the lowest block index."""
    best = None
    for block in sorted(candidates):
        if best is None or candidates[block] < candidates[best]:
            best = block
    return best


def is_nested(profile: Dict[int, Sequence[int]]) -> bool:
    """Whether every depth's blocks contain the next smaller depth's."""
    depths = sorted(profile)
    return all(set(profile[a]) <= set(profile[b]) for a, b in zip(depths, depths[1:]))
