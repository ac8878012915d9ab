"""The GP sampler: it learns (beats random search), it is a pure function of its inputs, it
spreads proposals around running trials, and it learns from low rungs and from failures."""
import math

import numpy as np
import pytest

from albert.tune.search.gp import GPSampler, Surrogate
from albert.tune.search.sampler import History, Observation, Pending
from albert.tune.sweep.settings import make_sampler
from albert.tune.search.space import Choice, IntUniform, LogUniform, Space, Uniform

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


def _fitted(space, n=25, seed=0):
    rng = np.random.default_rng(seed)
    configs = [space.sample(seed, i) for i in range(n)]
    obs = tuple(Observation(i, c, 1, float(np.sin(3 * space.encode(c)).sum() + 0.01 * rng.standard_normal()))
                for i, c in enumerate(configs))
    return Surrogate.fit(space, History(obs, (), "max", 1, 1), seed=0)


def test_predict_is_scikit_learns_posterior_without_the_noise():
    """Surrogate.predict computes the posterior from the fitted factors itself (speed); it must
    equal GaussianProcessRegressor.predict, whose spread includes the fitted noise."""
    space = Space({"lr": LogUniform(1e-5, 1e-1), "c": Choice(["a", "b", "c"]), "u": Uniform(0.0, 1.0)})
    model = _fitted(space)
    points = np.array([space.encode(space.sample(7, i)) for i in range(30)])
    mu, sigma = model.predict(points)
    ref_mu, ref_std = model.gp.predict(points * model.scale, return_std=True)
    noise = model.gp.kernel_.k2.noise_level
    assert mu == pytest.approx(ref_mu, abs=1e-10)
    assert sigma ** 2 == pytest.approx(np.maximum(ref_std ** 2 - noise, 0.0) + 1e-12, abs=1e-10)
    # at a point already observed the noise-free spread is below the noise's
    assert model.predict(model.X[:1])[1][0] < math.sqrt(noise)


def test_two_options_of_a_choice_are_one_apart_for_the_model():
    space = Space({"c": Choice(["a", "b", "c", "d"]), "u": Uniform(0.0, 1.0)})
    model = _fitted(space)
    a = space.encode({"c": "a", "u": 0.5}) * model.scale
    b = space.encode({"c": "d", "u": 0.5}) * model.scale
    c = space.encode({"c": "a", "u": 1.5}) * model.scale  # u one unit away (outside the range)
    assert np.linalg.norm(a - b) == pytest.approx(1.0) == pytest.approx(np.linalg.norm(a - c))
    assert model.gp.X_train_ == pytest.approx(model.X * model.scale)


def test_the_map_objective_adds_the_priors_with_their_gradient():
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    from albert.tune.search.gp import _map_objective

    kernel = ConstantKernel(0.1) + ConstantKernel(1.0) * Matern(np.ones(2), nu=2.5) + WhiteKernel(1e-3)
    # A flat likelihood: what is left is the prior, hand-computed below.
    objective = _map_objective(kernel, lambda theta: (0.0, np.zeros_like(theta)))
    theta = np.log([0.3, 2.0, 0.5, 1.7, 0.01])  # bias, signal, two length scales, noise
    value, grad = objective(theta)
    lam = np.exp(-2 * theta[2:4])  # inverse squared length scales
    expected = (-theta[0] + 0.3) + (-theta[1] + 2.0) + float(np.sum(0.1 / lam + 0.1 * lam)) \
        + (-0.1 * theta[4] + 30 * 0.01)
    assert value == pytest.approx(expected)
    h = 1e-6
    numeric = [(objective(theta + h * e)[0] - objective(theta - h * e)[0]) / (2 * h) for e in np.eye(len(theta))]
    assert grad == pytest.approx(numeric, rel=1e-5, abs=1e-6)
    # the length-scale prior is at its lowest at l = 1
    at = [objective(np.log([0.3, 2.0, l, 1.0, 0.01]))[0] for l in (0.5, 1.0, 2.0)]
    assert at[1] < min(at[0], at[2])


def test_far_from_the_data_the_model_expects_a_typical_result_not_the_average():
    """Most results flat, a few high: the learnt constant mean is the flat level, so an
    unexplored point is not predicted better than what is usually found there."""
    one = Space({"x": Uniform(0.0, 1.0)})
    xs = np.linspace(0.0, 0.6, 13)
    obs = tuple(Observation(i, {"x": float(x)}, 1, 5.0 if abs(x - 0.3) < 0.06 else 0.0) for i, x in enumerate(xs))
    model = Surrogate.fit(one, History(obs, (), "max", 1, 1), seed=0)
    far = model.metric(model.predict(np.array([[1.0]]))[0])[0]
    average = float(np.mean([o.value for o in obs]))
    assert -0.5 < far < 0.9 * average


def test_a_trial_paused_below_the_modelled_rung_counts_as_pending():
    """With the top rung modelled, a configuration seen only at the first rung (ASHA paused it)
    is unknown to the model; it is treated as a running trial, so the sampler does not propose
    it again, where without that it proposes the same point at every call."""
    one = Space({"x": Uniform(0.0, 1.0)})
    top = [Observation(i, {"x": x}, 9, -(x - 0.8) ** 2) for i, x in enumerate((0.1, 0.3, 0.5, 0.6, 0.7, 0.9))]
    alone = GPSampler(one, 0, initial_trials=5).propose(7, History(tuple(top), (), "max", 9, 1, (1, 3, 9)))
    assert alone.info["rung"] == 9 and alone.info["unseen"] == 0
    paused = Observation(6, {"x": alone.config["x"]}, 1, -0.5)
    p = GPSampler(one, 0, initial_trials=5).propose(7, History((*top, paused), (), "max", 9, 1, (1, 3, 9)))
    assert p.info["rung"] == 9 and p.info["unseen"] == 1
    assert abs(p.config["x"] - alone.config["x"]) > 0.02
    running = Pending(6, {"x": alone.config["x"]}, 3)  # on its way up: pending once, not twice
    q = GPSampler(one, 0, initial_trials=5).propose(7, History((*top, paused), (running,), "max", 9, 1, (1, 3, 9)))
    assert q.info["pending"] == 1 and q.info["unseen"] == 0


def test_the_proposal_names_the_length_scale_of_each_input():
    """ARD: a hyperparameter the metric ignores gets a longer length scale than one it depends on
    (bench_replay.py snaps proposals to its recorded pool in this metric)."""
    rng = np.random.default_rng(0)
    obs = tuple(Observation(i, {"x": float(x), "y": float(y)}, 1, -(x - 0.3) ** 2)
                for i, (x, y) in enumerate(rng.random((20, 2))))
    p = GPSampler(SPACE, 0).propose(20, History(obs, (), "max", 1, 1))
    x, y = p.info["length_scales"]
    assert x < 0.5 * y


def test_where_most_results_tie_the_model_ranks_them_by_validation_loss():
    """Early in training nearly every model scores the same (F1 0, the majority class): the
    metric cannot rank them, their validation losses can, and the model fits those."""
    one = Space({"x": Uniform(0.0, 1.0)})
    xs = np.linspace(0.02, 0.98, 12)
    obs = tuple(Observation(i, {"x": float(x)}, 1, 0.1 if i == 0 else 0.0, loss=1.0 + (x - 0.7) ** 2)
                for i, x in enumerate(xs))
    p = GPSampler(one, 0, initial_trials=5).propose(12, History(obs, (), "max", 1, 1))
    assert p.info["target"] == "loss" and abs(p.config["x"] - 0.7) < 0.1
    # A minimised metric: the loss is still minimised.
    q = GPSampler(one, 0, initial_trials=5).propose(12, History(obs, (), "min", 1, 1))
    assert q.info["target"] == "loss" and abs(q.config["x"] - 0.7) < 0.1
    # Without losses, or when the metric does rank the results, the metric is what is modelled.
    plain = tuple(Observation(o.trial_id, o.config, 1, o.value) for o in obs)
    assert GPSampler(one, 0, initial_trials=5).propose(12, History(plain, (), "max", 1, 1)).info["target"] == "metric"
    ranked = tuple(Observation(o.trial_id, o.config, 1, -abs(o.config["x"] - 0.2), loss=o.loss) for o in obs)
    r = GPSampler(one, 0, initial_trials=5).propose(12, History(ranked, (), "max", 1, 1))
    assert r.info["target"] == "metric" and abs(r.config["x"] - 0.2) < 0.1
