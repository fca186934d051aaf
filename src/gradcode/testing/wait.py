"""check_wait_policy: the contract of a wait policy's per-round state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..codes import cyclic_repetition, fractional_repetition
from ..core.code import Code

__all__ = ["check_wait_policy"]


def check_wait_policy(policy: Any, codes: Sequence[Code] | None = None, *,
                      decoder: Any = "optimal", seed: int = 0) -> None:
    """Check a wait policy as the master loop uses it.

    Rules: ``policy.validate(code)`` accepts the code or raises ValueError; ``start``
    gives a fresh state with a ``deadline`` (None or > 0) and ``add(worker, time) ->
    bool``; ``responders`` keeps the arrival order; once every worker arrived the state
    is satisfied; two states of the same policy do not share arrivals; the same arrival
    sequence gives the same answers; ``stop_index`` over the whole sequence (the
    vectorised path of a known round) stops at the first arrival ``add`` stopped at and
    keeps the same responders.

    Raises:
        AssertionError: a rule is broken (the message names the code and arrivals).
    """
    rng = np.random.default_rng(seed)
    codes = codes if codes is not None else [fractional_repetition(n=6, s=1),
                                             cyclic_repetition(n=5, s=2, seed=0)]
    name = getattr(policy, "name", repr(policy))
    for code in codes:
        try:
            policy.validate(code)
        except ValueError:
            continue
        order = rng.permutation(code.n).tolist()
        where = f"check_wait_policy({name}): code {code.name}, arrivals {order}"
        first, second = policy.start(code, decoder), policy.start(code, decoder)
        assert first is not second, f"{where}: start() returned the same state twice"
        deadline = first.deadline
        assert deadline is None or deadline > 0, f"{where}: deadline {deadline!r}"
        answers = [bool(first.add(w, 0.1 * i)) for i, w in enumerate(order)]
        assert list(first.responders) == order, f"{where}: responders lost the order"
        assert answers[-1], f"{where}: not satisfied after every worker arrived"
        assert list(second.responders) == [], f"{where}: states share their arrivals"
        again = [bool(second.add(w, 0.1 * i)) for i, w in enumerate(order)]
        assert again == answers, f"{where}: the same arrivals gave {again} then {answers}"
        third = policy.start(code, decoder)
        m = third.stop_index(np.asarray(order), 0.1 * np.arange(len(order)))
        expected = answers.index(True) + 1
        assert m == expected, f"{where}: stop_index gave {m}, add stopped at {expected}"
        assert list(third.responders) == order[:expected], \
            f"{where}: stop_index kept {list(third.responders)}"
