"""Proposals made while other trials run: the acquisition averaged over fantasised outcomes of
the pending trials (Snoek et al. 2012, "Practical Bayesian optimization", section 3.3; the
Monte-Carlo batch EI of qEI/qLogEI scores a point this way too, jointly with the pending set).

With the kernel fixed, conditioning the model on outcomes f_P at the pending points P changes
only its mean: for a joint posterior draw f_P = mu_P + L_P eps (L_P the Cholesky factor of the
posterior covariance at P),

    mu_s(x)      = mu(x) + a(x)^T eps,        a(x) = L_P^-1 cov(P, x)
    sigma_s(x)^2 = sigma(x)^2 - |a(x)|^2      (the same for every draw)

and the incumbent of draw s is max(best, max_j f_P,j). A point is scored by
log mean_s exp(acquisition(mu_s, sigma_s, best_s)): next to a pending trial its spread collapses
and, in every draw, it is no better than that trial's fantasy, so proposals spread; far from
them it scores as before. The draws are fixed per proposal (seeded), so the score is a smooth
deterministic function for the maximiser.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.linalg import cholesky, solve_triangular
from scipy.special import logsumexp

FANTASIES = 64  # joint posterior draws at the pending points per proposal
JITTER = 1e-6   # on the pending points' posterior covariance (standardised units), for its Cholesky factor


def fantasy_score(model, pending_points: np.ndarray, best: float, score: Callable, rng: np.random.Generator,
                  draws: int = FANTASIES) -> Callable[[np.ndarray], np.ndarray]:
    """points -> log mean over `draws` joint fantasies at `pending_points` of score(mu_s, sigma_s,
    best_s), with `model` a fitted gp.Surrogate and `score` a log acquisition (log EI or log PI).
    Points are model inputs (encoded configurations)."""
    P = np.atleast_2d(pending_points)
    mu_p, _ = model.predict(P)
    cov = model.covariance(P, P)
    L = cholesky(cov + JITTER * np.eye(len(P)), lower=True)
    # Antithetic pairs: the draws' mean is exactly the posterior mean at P.
    half = rng.standard_normal((-(-draws // 2), len(P)))
    eps = np.vstack([half, -half])[:draws]
    fantasy = mu_p[None, :] + eps @ L.T                       # (draws, |P|)
    incumbents = np.maximum(best, fantasy.max(axis=1))[:, None]
    log_draws = math.log(len(eps))

    def scored(points: np.ndarray) -> np.ndarray:
        mu, sigma = model.predict(points)
        a = solve_triangular(L, model.covariance(P, points), lower=True, check_finite=False)  # (|P|, n)
        spread = np.sqrt(np.maximum(sigma ** 2 - np.einsum("ij,ij->j", a, a), 0.0) + 1e-12)
        means = mu[None, :] + eps @ a                         # (draws, n)
        return logsumexp(score(means, spread[None, :], incumbents), axis=0) - log_draws

    return scored
