"""Acquisition functions against hand-computed values, and log EI where plain EI underflows."""
import math

import numpy as np
import pytest

from albert.errors import AlbertError
from albert.tune.search.acquisition import acquisition, log_ei, log_h, log_pi, ucb


def phi(z: float) -> float:
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def Phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


@pytest.mark.parametrize("mu, sigma, best", [(1.0, 1.0, 0.5), (0.2, 0.5, 0.7), (3.0, 0.1, 2.95), (-1.0, 2.0, 1.0)])
def test_ei_pi_ucb_match_their_formulas(mu, sigma, best):
    z = (mu - best) / sigma
    ei = sigma * (z * Phi(z) + phi(z))
    assert math.exp(log_ei(np.array([mu]), np.array([sigma]), best)[0]) == pytest.approx(ei, rel=1e-12)
    assert math.exp(log_pi(np.array([mu]), np.array([sigma]), best)[0]) == pytest.approx(Phi(z), rel=1e-12)
    assert ucb(np.array([mu]), np.array([sigma]), best, kappa=2.0)[0] == pytest.approx(mu + 2 * sigma)


def test_hand_computed_numbers():
    # mu 1, sigma 1, best 0.5: z = 0.5, EI = 0.5 * Phi(0.5) + phi(0.5) = 0.5 * 0.691462 + 0.352065
    assert math.exp(log_ei(np.array([1.0]), np.array([1.0]), 0.5)[0]) == pytest.approx(0.697797, abs=1e-6)
    # z = 0: EI = sigma * phi(0) = 2 * 0.398942; PI = 1/2
    assert math.exp(log_ei(np.array([0.3]), np.array([2.0]), 0.3)[0]) == pytest.approx(0.797885, abs=1e-6)
    assert math.exp(log_pi(np.array([0.3]), np.array([2.0]), 0.3)[0]) == pytest.approx(0.5)


def test_log_ei_stays_finite_and_ordered_where_ei_underflows():
    z = np.array([-5.0, -30.0, -40.0, -1e3, -1e6, -1e10])
    with np.errstate(divide="ignore"):
        naive = np.log(np.array([phi(v) + v * Phi(v) for v in z]))
    assert np.isneginf(naive[3:]).all()  # plain EI is exactly 0 (or worse, cancels) far from the incumbent
    h = log_h(z)
    assert np.isfinite(h).all() and (np.diff(h) < 0).all()
    assert h[0] == pytest.approx(naive[0], rel=1e-8)
    # z = -30: h(z) = phi(z) / z^2 * (1 - 3/z^2 + 15/z^4 - 105/z^6 + ...), the asymptotic series
    series = math.log(phi(-30.0)) - 2 * math.log(30.0) + math.log(
        1 - 3 / 900 + 15 / 900 ** 2 - 105 / 900 ** 3 + 945 / 900 ** 4)
    assert h[1] == pytest.approx(series, rel=1e-12)
    # the asymptote log phi(z) - 2 log|z| for very negative z
    assert h[-1] == pytest.approx(-0.5 * 1e20 - 0.5 * math.log(2 * math.pi) - 2 * math.log(1e10), rel=1e-12)
    # continuous across the branch at z = -1
    assert log_h(np.array([-1 + 1e-9]))[0] == pytest.approx(log_h(np.array([-1 - 1e-9]))[0], abs=1e-7)


def test_unknown_acquisition_is_a_user_error():
    with pytest.raises(AlbertError, match="--acquisition must be one of ei, pi, ucb, got 'eii'"):
        acquisition("eii")
