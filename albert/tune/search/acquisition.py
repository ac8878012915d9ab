"""Acquisition functions: how much a Gaussian posterior N(mu, sigma^2) at a point is worth trying.

All three score in the "larger is better" direction of a maximised objective (the GP sampler
flips the sign of a minimised metric before it gets here), and take the incumbent `best` (the
best value believed so far) where they need one:

    log EI   log E[max(f - best, 0)]         = log sigma + log h(z),  h(z) = phi(z) + z Phi(z)
    log PI   log P(f > best)                 = log Phi(z)
    UCB      mu + kappa * sigma

with z = (mu - best) / sigma. EI and PI are returned as logarithms: far from the incumbent EI
underflows to exactly 0 in floating point (z below about -38), and a flat zero gives the optimiser
nothing to climb; log h(z) stays finite and ordered down to z of -1e150 (Ament et al., "Unexpected
improvements to expected improvement", NeurIPS 2023, eq. 9, which the branches below follow).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import erfcx, log_ndtr, ndtr

from ...errors import AlbertError

ACQUISITIONS = ("ei", "pi", "ucb")
UCB_KAPPA = 2.0  # standard deviations of optimism: about the 98th percentile of the posterior

_LOG_2PI_HALF = 0.5 * math.log(2 * math.pi)
_LOG_PI_2_HALF = 0.5 * math.log(math.pi / 2)
_TAIL = -1.0 / math.sqrt(np.finfo(float).eps)  # below: the asymptote is exact in double precision


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x < 0, accurate near 0 and far from it."""
    return np.where(x > -math.log(2), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z Phi(z)), the standardised log expected improvement, for any z."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    upper = z > -1
    zu = z[upper]
    out[upper] = np.log(np.exp(-0.5 * zu ** 2 - _LOG_2PI_HALF) + zu * ndtr(zu))
    middle = ~upper & (z > _TAIL)
    zm = z[middle]
    out[middle] = (-0.5 * zm ** 2 - _LOG_2PI_HALF
                   + _log1mexp(np.log(erfcx(-zm / math.sqrt(2)) * np.abs(zm)) + _LOG_PI_2_HALF))
    tail = z <= _TAIL
    zt = z[tail]
    out[tail] = -0.5 * zt ** 2 - _LOG_2PI_HALF - 2 * np.log(np.abs(zt))
    return out


def _z(mu: np.ndarray, sigma: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray]:
    sigma = np.maximum(np.asarray(sigma, dtype=float), 1e-12)
    return (np.asarray(mu, dtype=float) - best) / sigma, sigma


def log_ei(mu: np.ndarray, sigma: np.ndarray, best: float) -> np.ndarray:
    """log expected improvement over `best`."""
    z, sigma = _z(mu, sigma, best)
    return np.log(sigma) + log_h(z)


def log_pi(mu: np.ndarray, sigma: np.ndarray, best: float) -> np.ndarray:
    """log probability of improving on `best`."""
    z, _ = _z(mu, sigma, best)
    return log_ndtr(z)


def ucb(mu: np.ndarray, sigma: np.ndarray, best: float = 0.0, kappa: float = UCB_KAPPA) -> np.ndarray:
    """Upper confidence bound; `best` is not used (the signature matches the other two)."""
    return np.asarray(mu, dtype=float) + kappa * np.asarray(sigma, dtype=float)


FUNCTIONS = {"ei": log_ei, "pi": log_pi, "ucb": ucb}


def acquisition(name: str):
    """The scoring function for --acquisition `name` (ei | pi | ucb)."""
    if name not in FUNCTIONS:
        raise AlbertError(f"--acquisition must be one of {', '.join(ACQUISITIONS)}, got {name!r}")
    return FUNCTIONS[name]
