"""Our sampler behind Ray Tune's Searcher protocol, driven the way Ray drives it: the same history
as a local sweep, failures and running trials included, and checkpoints. The class is Ray's real
Searcher mixed in; Ray's scheduling around it is in test_ray_real.py."""
import math

import pytest

from albert.tune.sweep import synthetic
from albert.tune.ray_engine.backend import LOSS, METRIC, RESOURCE, SEED_KEY
from albert.tune.ray_engine.searcher import INDEX_KEY, SamplerSearcher, ray_searcher
from albert.tune.search.space import Space, Uniform
from albert.tune.sweep.run import SweepSettings, trial_seed

SPACE = Space({"x": Uniform(0.0, 1.0), "y": Uniform(0.0, 1.0)})


def settings(**kw):
    base = dict(sweep_dir="unused", task="rte", objective=synthetic.curve, space=SPACE.to_json(), sampler="gp",
                initial_trials=3, min_resource=1, max_resource=9, eta=3, fixed={"synthetic_sleep_ms": 0})
    base.update(kw)
    return SweepSettings(**base)


def curve(config, resource):
    return -(config["x"] - 0.3) ** 2 - (config["y"] - 0.6) ** 2 - 1.0 / resource


def drive(searcher, n, fail=()):
    """Ray's calls for n trials, one at a time, each reporting its rungs 1, 3, 9."""
    configs = []
    for k in range(n):
        tid = f"trial_{k:05d}"
        config = searcher.suggest(tid)
        configs.append(config)
        if k in fail:
            searcher.on_trial_complete(tid, error=True)
            continue
        for r in (1, 2, 3, 9):
            searcher.on_trial_result(tid, {RESOURCE: r, METRIC: curve(config, r), LOSS: 1 - curve(config, r),
                                           "rung": r != 2})
        searcher.on_trial_complete(tid, {RESOURCE: 9, METRIC: curve(config, 9)})
    return configs


def test_is_a_ray_searcher_with_our_metric_and_mode():
    """Ray's real Searcher (its `mode` is a read-only property: assigning it crashed every GP sweep)."""
    from ray.tune.search import Searcher

    s = ray_searcher(settings(mode="min"), SPACE, Searcher)
    assert isinstance(s, Searcher) and isinstance(s, SamplerSearcher)
    assert (s.metric, s.mode) == (METRIC, "min") and s.set_search_properties(METRIC, "min", {}) is True
    config = s.suggest("a1b2c3")
    assert config[INDEX_KEY] == 0 and s.suggest("ffee00")[INDEX_KEY] == 1


def test_suggestions_carry_fixed_options_and_the_trial_seed_and_learn():
    s = SamplerSearcher(settings(), SPACE)
    configs = drive(s, 14, fail={4})
    assert all(c["synthetic_sleep_ms"] == 0 for c in configs)
    assert [c[SEED_KEY] for c in configs] == [trial_seed(0, k) for k in range(14)]
    assert any(math.isnan(m) for i, r, m, _ in s.results if i == 4)  # the failure is in the history
    # the validation loss reported beside the metric is kept for the sampler
    assert all(loss == pytest.approx(1 - m) for i, r, m, loss in s.results if i != 4)
    # after the 3 Sobol points the model's proposals close in on the optimum at (0.3, 0.6)
    assert min(math.dist((c["x"], c["y"]), (0.3, 0.6)) for c in configs[6:]) < 0.03


def test_same_calls_same_suggestions_and_a_restored_searcher_goes_on_identically(tmp_path):
    a, b = SamplerSearcher(settings(), SPACE), SamplerSearcher(settings(), SPACE)
    assert drive(a, 6) == drive(b, 6)
    a.suggest("trial_00006")  # running when the experiment stopped
    a.save(str(tmp_path / "searcher.json"))
    c = SamplerSearcher(settings(), SPACE)
    c.restore(str(tmp_path / "searcher.json"))
    assert c.index == a.index and c.results == a.results and c.running == a.running == {6}
    assert c.suggest("trial_00007") == a.suggest("trial_00007")


def test_running_trials_are_pending_in_the_history():
    s = SamplerSearcher(settings(), SPACE)
    drive(s, 5)
    first = s.suggest("trial_00005")
    second = s.suggest("trial_00006")  # trial 5 still running: the model must not repeat it
    assert (first["x"], first["y"]) != pytest.approx((second["x"], second["y"]), abs=0.05)
