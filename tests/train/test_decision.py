"""When to evaluate, save and stop, as tables: decide() after a step, judge() after an evaluation."""
from __future__ import annotations

import pytest

from albert.train.decision import Decision, decide, judge

E, S, X = "evaluate", "save", "stop"


def _do(*what: str) -> Decision:
    return Decision(evaluate=E in what, save=S in what, stop=X in what)


# step, total, epoch_end, eval_every, save_every, bad_steps -> what to do
DECIDE = [
    # eval_every 0: evaluate (and save, save_every 0) at each epoch's end, and at the last step
    (3, 10, False, 0, 0, 0, _do()),
    (4, 10, True, 0, 0, 0, _do(E, S)),
    (10, 10, False, 0, 0, 0, _do(E, S, X)),
    (10, 10, True, 0, 0, 0, _do(E, S, X)),
    (12, 10, False, 0, 0, 0, _do(E, S, X)),  # past the end (a resumed run with fewer max_steps)
    # eval_every n: every n steps, not at epoch ends; saving follows evaluation
    (6, 20, False, 3, 0, 0, _do(E, S)),
    (7, 20, True, 3, 0, 0, _do()),
    (20, 20, False, 3, 0, 0, _do(E, S, X)),
    # save_every m: its own cadence, evaluation or not
    (4, 20, False, 3, 2, 0, _do(S)),
    (3, 20, False, 3, 2, 0, _do(E)),
    (6, 20, False, 3, 2, 0, _do(E, S)),
    (5, 20, True, 0, 5, 0, _do(E, S)),
    # during a run of non-finite steps: no metric of the weights that gave it, and the checkpoints
    # written before it stay, even at the last step (where the loop reports the divergence)
    (6, 20, False, 3, 0, 1, _do()),
    (4, 20, False, 3, 2, 2, _do()),
    (4, 4, True, 0, 0, 3, _do(X)),
]


@pytest.mark.parametrize("step,total,epoch_end,eval_every,save_every,bad_steps,expected", DECIDE)
def test_decide(step, total, epoch_end, eval_every, save_every, bad_steps, expected):
    got = decide(step=step, total_steps=total, epoch_end=epoch_end, eval_every=eval_every,
                 save_every=save_every, bad_steps=bad_steps)
    assert got == expected


# value, best, greater_is_better, evals_without_improvement, patience -> (improved, count, out of patience)
JUDGE = [
    (0.5, None, True, 0, None, (True, 0, False)),   # the first evaluation is always the best so far
    (0.5, None, False, 0, 1, (True, 0, False)),
    (0.6, 0.5, True, 2, 3, (True, 0, False)),      # better: the count starts again
    (0.4, 0.5, False, 2, 3, (True, 0, False)),
    (0.5, 0.5, True, 0, 3, (False, 1, False)),     # a tie is no improvement
    (0.4, 0.5, True, 1, 3, (False, 2, False)),
    (0.4, 0.5, True, 2, 3, (False, 3, True)),      # the third evaluation without improvement: stop
    (0.6, 0.5, False, 0, 1, (False, 1, True)),
    (0.4, 0.5, True, 50, None, (False, 51, False)),  # no patience: never stops
    (float("nan"), 0.5, True, 0, 2, (False, 1, False)),  # NaN never improves
    (float("nan"), None, True, 0, None, (False, 1, False)),  # not even as the first evaluation
    (float("inf"), None, False, 1, 2, (False, 2, True)),
    (0.3, None, True, 1, 3, (True, 0, False)),  # the first finite value after a NaN one is the best so far
]


@pytest.mark.parametrize("value,best,greater,count,patience,expected", JUDGE)
def test_judge(value, best, greater, count, patience, expected):
    got = judge(value, best, greater_is_better=greater, evals_without_improvement=count, patience=patience)
    assert tuple(got) == expected
