"""The sampler interface: the random baseline, redraws of infeasible configurations, and the
history a model-based sampler learns from (every rung, failures included)."""
import math

import pytest

from albert.errors import AlbertError
from albert.tune.sweep.settings import check_sampler_options
from albert.tune.search.sampler import (History, Observation, RandomSampler, build_history,
                                 rung_observations)
from albert.tune.sweep.settings import make_sampler
from albert.tune.search.space import Choice, IntUniform, LogUniform, Space, Uniform, default_space

EMPTY = History((), (), "max", 27, 1)


def test_random_sampler_is_space_sample_whatever_the_history():
    space = default_space("rte")
    sampler = make_sampler("random", space, master_seed=5)
    busy = History((Observation(1, space.sample(5, 0), 27, 0.8),), (), "max", 27, 1)
    for i in range(10):
        assert sampler.propose(i, EMPTY).config == space.sample(5, i) == sampler.propose(i, busy).config


def test_infeasible_draws_are_redrawn_deterministically():
    space = Space({"heads": IntUniform(1, 8), "lr": LogUniform(1e-5, 1e-3)})
    odd = RandomSampler(space, 0, feasible=lambda c: None if c["heads"] % 2 == 0 else f"{c['heads']} is odd")
    configs = [odd.propose(i, EMPTY) for i in range(30)]
    assert all(p.config["heads"] % 2 == 0 for p in configs)
    redrawn = [p for p in configs if p.info.get("redrawn")]
    assert redrawn and [odd.propose(i, EMPTY).config for i in range(30)] == [p.config for p in configs]
    never = RandomSampler(space, 0, feasible=lambda c: "never")
    with pytest.raises(AlbertError, match="no valid configuration in 100 draws .the last: never.; narrow --space"):
        never.propose(0, EMPTY)


@pytest.mark.parametrize("args, message", [
    (("tpe", "ei", None), "--sampler must be one of random, gp, got 'tpe'"),
    (("gp", "eii", None), "--acquisition must be one of ei, pi, ucb, got 'eii'"),
    (("gp", "ei", 0), "--initial-trials must be a positive integer, got 0"),
])
def test_bad_sampler_options(args, message):
    with pytest.raises(AlbertError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_sampler_options(*args)


def test_rung_observations_keep_the_first_result_per_rung():
    rungs = [1, 3, 9]
    results = [(1, 1, 0.5), (2, 1, 0.4),
               (1, 2, 0.55), (1, 3, 0.6),  # a report between rungs, then the rung
               (1, 3, 0.99),               # the same job re-run after a crash: the first result stands
               (3, 4, 0.7), (3, 8, 0.75), (3, 9, 0.8)]  # a stop-only scheduler's evaluations
    assert rung_observations(results, rungs) == {
        (1, 1): (1, 0.5), (2, 1): (1, 0.4), (1, 3): (3, 0.6), (3, 3): (4, 0.7), (3, 9): (9, 0.8)}


def test_history_holds_every_rung_failures_and_pending_trials():
    space = Space({"x": Uniform(0.0, 1.0)})
    configs = {1: {"x": 0.1, "task": "rte"}, 2: {"x": 0.2}, 3: {"x": 0.3}, 4: {"x": 0.4}}
    results = [(1, 1, 0.5), (2, 1, math.nan), (1, 3, 0.6), (9, 1, 0.9)]  # trial 9: not a search trial
    h = build_history(space, configs, results, [(3, 1), (1, 9)], [1, 3, 9], "max")
    assert [(o.trial_id, o.resource) for o in h.observations] == [(1, 1), (1, 3), (2, 1)]
    assert math.isnan(h.observations[2].value)
    assert h.observations[0].config == {"x": 0.1}  # only the searched names
    assert [(p.trial_id, p.resource) for p in h.pending] == [(1, 9), (3, 1)]
    assert (h.min_resource, h.max_resource, h.mode) == (1, 9, "max")


def test_mixed_space_proposals_are_valid_values():
    space = Space({"lr": LogUniform(1e-5, 1e-2), "n": IntUniform(1, 4), "act": Choice(["gelu", "relu"])})
    sampler = make_sampler("gp", space, 0, initial_trials=3)
    obs = []
    for i in range(8):
        c = sampler.propose(i, History(tuple(obs), (), "max", 1, 1)).config
        assert 1e-5 <= c["lr"] <= 1e-2 and c["n"] in (1, 2, 3, 4) and type(c["n"]) is int and c["act"] in ("gelu", "relu")
        obs.append(Observation(i, c, 1, -abs(math.log10(c["lr"]) + 3) + (c["act"] == "relu") - abs(c["n"] - 3)))
