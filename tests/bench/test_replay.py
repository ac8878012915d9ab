"""bench/bench_replay.py's pool protocol: every method draws recorded configurations, each once,
and the GP's proposal is the untried configuration its acquisition scores best."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import bench_replay  # noqa: E402

from albert.tune.search.space import LogUniform, Space, Uniform  # noqa: E402

SPACE = Space({"lr": LogUniform(1e-4, 1e-2), "warmup": Uniform(0.0, 0.3)})


def _table(tmp_path: Path, n: int = 24) -> bench_replay.Table:
    """A table whose final metric peaks at lr 1e-3, warmup 0.1; rungs at 2, 4 and 8 steps."""
    rows = []
    for i in range(n):
        config = SPACE.sample(7, i)
        peak = 1.0 - (np.log10(config["lr"]) + 3.0) ** 2 - (config["warmup"] - 0.1) ** 2
        rows.append({"index": i, "config": config, "curve": [[s, peak * s / 8] for s in (2, 4, 6, 8)]})
    path = tmp_path / "curves-toy.json"
    path.write_text(json.dumps({"task": "toy", "max_steps": 8, "space": SPACE.to_json(), "configs": rows}))
    return bench_replay.Table(path)


@pytest.mark.parametrize("method", (*bench_replay.METHODS, bench_replay.ORACLE))
def test_a_replay_reports_a_recorded_metric_within_its_budget_and_repeats_exactly(tmp_path, method):
    table = _table(tmp_path)
    out = bench_replay.replay(table, method, seed=3, resource_budget=10 * 8, min_resource=2)
    assert out["spent"] <= 80 and out["completed"] >= 1
    assert out["best"] in {table.final(i) for i in range(len(table.configs))}
    again = bench_replay.replay(table, method, seed=3, resource_budget=80, min_resource=2)
    assert {k: v for k, v in again.items() if k != "cpu_s"} == {k: v for k, v in out.items() if k != "cpu_s"}
    # With resource for more than the pool, every configuration is tried and none twice.
    everything = bench_replay.replay(table, method, seed=3, resource_budget=100 * 8, min_resource=2)
    assert everything["trials"] == len(table.configs)
    assert everything["best"] == max(table.final(i) for i in range(len(table.configs)))


def test_random_search_over_the_pool_is_a_draw_without_replacement(tmp_path):
    table = _table(tmp_path)
    used: set[int] = set()
    for index in range(len(table.configs)):
        row = table.uniform_unused(used, seed=0, index=index)
        assert row not in used
        used.add(row)
    assert used == set(range(len(table.configs)))
    # Seeded by (seed, index): another seed draws another order.
    assert [table.uniform_unused(set(), 1, i) for i in range(5)] != [table.uniform_unused(set(), 0, i)
                                                                     for i in range(5)]


@pytest.mark.parametrize("method", ["gp+asha", bench_replay.ORACLE])
def test_the_oracle_model_sees_each_trials_final_metric_and_gp_asha_its_rung_metric(tmp_path, monkeypatch, method):
    table = _table(tmp_path)
    finals = {json.dumps(table.configs[i], sort_keys=True): table.final(i) for i in range(len(table.configs))}
    seen: list[tuple[float, float, int]] = []  # (metric the model saw, the trial's final metric, resource)

    def spy(space, configs, results, pending, rungs, mode):
        seen.extend((metric, finals[json.dumps(configs[t], sort_keys=True)], r) for t, r, metric, _ in results)
        return build_history(space, configs, results, pending, rungs, mode)

    build_history = bench_replay.build_history
    monkeypatch.setattr(bench_replay, "build_history", spy)
    bench_replay.replay(table, method, seed=3, resource_budget=10 * 8, min_resource=2)
    below_full = [(m, f) for m, f, r in seen if r < table.max_steps]
    assert below_full  # ASHA paused trials below a full training
    if method == bench_replay.ORACLE:
        assert all(m == f for m, f, _ in seen)
    else:  # the toy curves rise linearly: a rung's metric is a fraction of the final one
        assert all(m != f for m, f in below_full if f != 0)


def test_the_pool_maximiser_returns_the_best_untried_configuration(tmp_path):
    table = _table(tmp_path, n=10)
    used = {max(range(10), key=lambda i: table.configs[i]["lr"]), 0}  # the best of all is taken
    maximiser = bench_replay.PoolMaximiser(table, used)
    lr_coordinate = list(SPACE).index("lr")

    def score(points: np.ndarray) -> np.ndarray:
        return points[:, lr_coordinate]  # the largest learning rate wins

    point, value = maximiser.maximise(score, np.random.default_rng(0), np.zeros((1, 2)))
    untried = [i for i in range(10) if i not in used]
    best = max(untried, key=lambda i: table.configs[i]["lr"])
    assert maximiser.row == best
    assert value == pytest.approx(SPACE.encode(table.configs[best])[lr_coordinate])
    np.testing.assert_allclose(point, SPACE.encode(table.configs[best]))


def test_the_sign_test_against_the_binomial_tail_by_hand():
    # 7 seeds ahead, 3 behind: 2 x (C(10,7) + C(10,8) + C(10,9) + C(10,10)) / 2^10 = 352 / 1024.
    assert bench_replay.sign_test(7, 3) == pytest.approx(352 / 1024)
    assert bench_replay.sign_test(3, 7) == pytest.approx(352 / 1024)
    assert bench_replay.sign_test(5, 5) == pytest.approx(1.0)
    assert bench_replay.sign_test(10, 0) == pytest.approx(2 / 1024)
    assert bench_replay.sign_test(0, 0) == 1.0  # every seed level: nothing to test
