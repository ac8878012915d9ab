"""The GP sampler: it learns (beats random search), it is a pure function of its inputs, it
spreads proposals around running trials, and it learns from low rungs and from failures."""
import math

import numpy as np
import pytest

from albert.tune.gp import GPSampler, Surrogate, _encode_quantiles
from albert.tune.sampler import History, Observation, Pending
from albert.tune.settings import make_sampler
from albert.tune.space import Choice, IntUniform, LogUniform, Space, Uniform

SPACE = Space({"x": Uniform(0.0, 1.0), "y": Uniform(0.0, 1.0)})


def bowl(c) -> float:
    return (c["x"] - 0.7) ** 2 + (c["y"] - 0.2) ** 2


def run(name: str, seed: int, n: int) -> list[float]:
    sampler = make_sampler(name, SPACE, seed)
    obs, values = [], []
    for i in range(n):
        config = sampler.propose(i, History(tuple(obs), (), "min", 1, 1)).config
        obs.append(Observation(i, config, 1, bowl(config)))
        values.append(bowl(config))
    return values


def test_gp_finds_the_minimum_of_a_bowl_far_better_than_random():
    gp = [min(run("gp", seed, 20)) for seed in range(2)]
    rnd = [min(run("random", seed, 20)) for seed in range(2)]
    assert max(gp) < 1e-3 < min(rnd)


def test_a_proposal_is_a_pure_function_of_its_inputs():
    obs = tuple(Observation(i, SPACE.sample(0, i), 1, bowl(SPACE.sample(0, i))) for i in range(8))
    history = History(obs, (Pending(9, {"x": 0.5, "y": 0.5}, 1),), "min", 1, 1)
    a = GPSampler(SPACE, 3).propose(10, history)
    b = GPSampler(SPACE, 3).propose(10, history)
    assert a.config == b.config and a.info["how"] == "model"
    assert GPSampler(SPACE, 3).propose(11, history).config != a.config  # the index seeds the search


def test_initial_trials_are_a_sobol_design_then_the_model():
    sampler = GPSampler(SPACE, 0, initial_trials=4)
    hows = []
    obs = []
    for i in range(6):
        p = sampler.propose(i, History(tuple(obs), (), "min", 1, 1))
        hows.append(p.info["how"])
        obs.append(Observation(i, p.config, 1, bowl(p.config)))
    assert hows == ["sobol"] * 4 + ["model"] * 2
    # Sobol points fill the square: one in each quadrant among the first four
    quadrants = {(o.config["x"] > 0.5, o.config["y"] > 0.5) for o in obs[:4]}
    assert len(quadrants) == 4


def test_proposals_while_trials_run_are_spread():
    obs = tuple(Observation(i, SPACE.sample(1, i), 1, bowl(SPACE.sample(1, i))) for i in range(10))
    sampler = GPSampler(SPACE, 0)
    alone = sampler.propose(10, History(obs, (), "min", 1, 1)).config
    pending, points = [], []
    for k in range(4):
        config = sampler.propose(10 + k, History(obs, tuple(pending), "min", 1, 1)).config
        pending.append(Pending(10 + k, config, 1))
        points.append(SPACE.encode(config))
    distances = [np.linalg.norm(a - b) for i, a in enumerate(points) for b in points[i + 1:]]
    assert min(distances) > 0.1
    # without running trials the same call goes back to the best point; with them it moves away
    assert np.linalg.norm(SPACE.encode(alone) - points[0]) < 0.05 < np.linalg.norm(SPACE.encode(alone) - points[1])


def test_low_rungs_and_pruned_trials_inform_the_model():
    """Twenty trials seen only at the first rung (ASHA pruned them) and two at the top: the model
    learns from the first rung, where enough trials are, and its best is the first rung's best.
    Once enough trials reach a higher rung, that rung is modelled (BOHB's rule)."""
    one = Space({"x": Uniform(0.0, 1.0)})
    obs = [Observation(i, {"x": x}, 1, -(x - 0.8) ** 2 - 0.3) for i, x in enumerate(np.linspace(0.02, 0.98, 20))]
    obs += [Observation(20, {"x": 0.1}, 9, -0.49), Observation(21, {"x": 0.45}, 9, -0.12),
            Observation(22, {"x": 0.3}, 3, math.nan)]  # diverged on its way to rung 3
    history = History(tuple(obs), (), "max", 9, 1, (1, 3, 9))
    model = Surrogate.fit(one, history, seed=0, min_points=5)
    assert model.level == 1 and len(model.z) == 21  # the first rung, and the failure
    grid = np.linspace(0, 1, 101)[:, None]
    mu, _ = model.predict(grid)
    assert abs(grid[np.argmax(mu), 0] - 0.8) < 0.05
    without = Surrogate.fit(one, History(tuple(obs[:22]), (), "max", 9, 1, (1, 3, 9)), seed=0, min_points=5)
    assert model.metric(model.predict(grid[30:31])[0])[0] < without.metric(without.predict(grid[30:31])[0])[0]
    p = GPSampler(one, 0, initial_trials=5).propose(23, history)
    assert p.info["rung"] == 1 and abs(p.config["x"] - 0.8) < 0.2
    more = obs + [Observation(30 + i, {"x": x}, 9, -(x - 0.8) ** 2) for i, x in enumerate((0.6, 0.7, 0.9))]
    assert Surrogate.fit(one, History(tuple(more), (), "max", 9, 1, (1, 3, 9)), 0, min_points=5).level == 9


def test_failed_trials_steer_away():
    one = Space({"x": Uniform(0.0, 1.0)})
    # everything above x = 0.5 diverged; below, larger is better
    obs = [Observation(i, {"x": x}, 1, x if x < 0.5 else math.nan) for i, x in enumerate(np.linspace(0.05, 0.95, 10))]
    p = GPSampler(one, 0, initial_trials=2).propose(10, History(tuple(obs), (), "max", 1, 1))
    assert 0.3 < p.config["x"] < 0.6


def test_infeasible_configurations_are_never_proposed():
    space = Space({"hidden": Choice([64, 96, 128]), "heads": IntUniform(1, 4), "lr": LogUniform(1e-4, 1e-2)})

    def feasible(c):
        return None if c["hidden"] % c["heads"] == 0 else "heads do not divide hidden"

    sampler = GPSampler(space, 0, feasible, initial_trials=3)
    obs = []
    for i in range(10):
        c = sampler.propose(i, History(tuple(obs), (), "max", 1, 1)).config
        assert feasible(c) is None
        # the best scores are at 3 heads, which divides only 96
        obs.append(Observation(i, c, 1, -abs(c["heads"] - 3) - abs(math.log10(c["lr"]) + 3)))


def test_vectorised_candidates_equal_encoded_configurations():
    space = Space({"lr": LogUniform(1e-5, 1e-1), "n": IntUniform(2, 6), "c": Choice(["a", "b", "c"]),
                   "u": Uniform(-1.0, 1.0)})
    q = np.random.default_rng(0).random((50, 4))
    fast = _encode_quantiles(space, q)
    slow = np.array([space.encode(space.from_quantiles(row)) for row in q])
    assert fast == pytest.approx(slow, abs=1e-12)
