"""The acquisition maximiser: vectorised candidates, the maximum of a known function over a mixed
space, and feasibility respected."""
import numpy as np
import pytest

from albert.tune.search.maximise import Maximiser, _encode_quantiles
from albert.tune.search.space import Choice, IntUniform, LogUniform, Space, Uniform


def test_vectorised_candidates_equal_encoded_configurations():
    space = Space({"lr": LogUniform(1e-5, 1e-1), "n": IntUniform(2, 6), "c": Choice(["a", "b", "c"]),
                   "u": Uniform(-1.0, 1.0)})
    q = np.random.default_rng(0).random((50, 4))
    fast = _encode_quantiles(space, q)
    slow = np.array([space.encode(space.from_quantiles(row)) for row in q])
    assert fast == pytest.approx(slow, abs=1e-12)


def test_the_maximum_of_a_known_function_over_a_mixed_space():
    """A smooth peak in the continuous coordinates, one best option and one best integer: the
    maximiser returns the peak (not just the best of its random candidates)."""
    space = Space({"x": Uniform(0.0, 1.0), "y": Uniform(0.0, 1.0), "c": Choice(["a", "b", "c"]), "n": IntUniform(1, 5)})

    def score(points: np.ndarray) -> np.ndarray:
        b, n, x, y = points[:, 1], points[:, 3], points[:, 4], points[:, 5]  # c one-hot, n, x, y
        return -(x - 0.37) ** 2 - 2 * (y - 0.81) ** 2 + b - (n - 0.7) ** 2

    point, value = Maximiser(space).maximise(score, np.random.default_rng(0), np.empty((0, space.width)))
    config = space.decode(point)
    assert config["c"] == "b" and config["n"] == 4
    assert abs(config["x"] - 0.37) < 1e-4 and abs(config["y"] - 0.81) < 1e-4
    assert value == pytest.approx(float(score(point[None, :])[0]))


def test_infeasible_configurations_are_never_the_maximum():
    space = Space({"x": Uniform(0.0, 1.0)})
    point, _ = Maximiser(space, lambda c: "too big" if c["x"] > 0.5 else None).maximise(
        lambda p: p[:, 0], np.random.default_rng(0), np.empty((0, 1)))
    assert point[0] <= 0.5
