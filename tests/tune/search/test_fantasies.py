"""Proposals made while trials run: the acquisition averaged over joint fantasies of the pending
trials' outcomes spreads proposals, and is the plain acquisition far from them."""
import numpy as np
import pytest

from albert.tune.search.acquisition import log_ei
from albert.tune.search.fantasies import fantasy_score
from albert.tune.search.gp import GPSampler, Surrogate
from albert.tune.search.sampler import History, Observation, Pending
from albert.tune.search.space import Space, Uniform

SPACE = Space({"x": Uniform(0.0, 1.0), "y": Uniform(0.0, 1.0)})


def bowl(c):
    return (c["x"] - 0.3) ** 2 + (c["y"] - 0.7) ** 2  # minimised at (0.3, 0.7)


def history(pending=()):
    configs = [SPACE.sample(3, i) for i in range(12)]
    return History(tuple(Observation(i, c, 1, bowl(c)) for i, c in enumerate(configs)), tuple(pending), "min", 1, 1)


def test_fantasy_score_vanishes_on_a_pending_point_and_matches_log_ei_far_from_it():
    model = Surrogate.fit(SPACE, history(), seed=0)
    best = float(model.z.max())
    # A pending trial in a poor corner: its fantasies do not raise the incumbent, so far from it
    # (near the optimum) the score is log EI, and on it no improvement is left.
    pending = np.array([[0.95, 0.05]])
    score = fantasy_score(model, pending, best, log_ei, np.random.default_rng(0))
    mu, sigma = model.predict(pending)
    assert score(pending)[0] < log_ei(mu, sigma, best)[0] - 5
    far = np.array([[0.3, 0.7], [0.5, 0.5]])
    mu, sigma = model.predict(far)
    assert score(far) == pytest.approx(log_ei(mu, sigma, best), abs=0.02)


def four_proposals(sampler, tell_pending=True):
    """Four proposals, each made while the earlier ones run (or, tell_pending False, as if
    nothing ran): their unit-square points."""
    pending, points = [], []
    for k in range(4):
        config = sampler.propose(12 + k, history(pending if tell_pending else ())).config
        pending.append(Pending(100 + k, config, 1))
        points.append(SPACE.encode(config))
    return points


def min_gap(points):
    return min(float(np.linalg.norm(a - b)) for i, a in enumerate(points) for b in points[i + 1:])


@pytest.mark.parametrize("acquisition", ["ei", "ucb"])  # fantasies; UCB's believer and penalty
def test_proposals_made_while_others_run_spread(acquisition):
    sampler = GPSampler(SPACE, master_seed=0, acquisition=acquisition)
    # Blind to the running trials, the sampler proposes (nearly) one point four times...
    assert min_gap(four_proposals(sampler, tell_pending=False)) < 0.005
    # ...told of them, four distinct points, each where the others' fantasies leave improvement.
    points = four_proposals(sampler)
    assert min_gap(points) > 0.03, points
    assert sampler.propose(16, history([Pending(100 + k, SPACE.decode(p), 1) for k, p in enumerate(points)])
                           ).info["pending"] == 4
