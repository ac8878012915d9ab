"""Maximising an acquisition function over a search space's unit cube (the GP sampler's inner
loop; Optuna keeps the same step apart in optuna/_gp/optim_mixed.py).

Score scrambled Sobol candidates (and the best configurations so far), then refine from ten of
them - the best, the incumbents, and draws weighted by their acquisition - by L-BFGS-B over the
continuous coordinates, run to convergence, then every option of each choice and one step of
each integer, alternating until nothing moves. Infeasible configurations are never returned.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.optimize import minimize
from scipy.stats import qmc

from ...errors import AlbertError
from .sampler import Feasibility
from .space import Choice, IntUniform, Space

CANDIDATES = 2048       # Sobol points the acquisition is scored on
REFINE = 10             # local searches per proposal
LOCAL_ITERATIONS = 200  # L-BFGS-B iterations of each
ALTERNATIONS = 10       # rounds of continuous then discrete moves in one local search
INCUMBENT_STARTS = 1    # of them, from the best configurations so far

Score = Callable[[np.ndarray], np.ndarray]  # unit-cube points (rows) -> acquisition values


class Maximiser:
    """The acquisition's maximiser for one space and feasibility rule."""

    def __init__(self, space: Space, feasible: Feasibility | None = None) -> None:
        self.space = space
        self.feasible = feasible  # None: every configuration is valid, and none is decoded to check
        self.continuous = np.array([k == "continuous" for k in space.kinds()])
        # (first unit-cube coordinate, distribution) per hyperparameter
        self.blocks = [(where.start, space[name]) for name, where in space.coordinates().items()]

    def maximise(self, score: Score, rng: np.random.Generator, incumbent: np.ndarray) -> tuple[np.ndarray, float]:
        """The acquisition's maximum: score random candidates, then refine from several starts -
        the best candidate, the best configurations so far, and candidates drawn with
        probability proportional to their acquisition (exp of log EI), so that other modes than
        the incumbent's get a local search too."""
        # A scrambled Sobol set covers the cube more evenly than as many uniform draws.
        sobol = qmc.Sobol(len(self.space), scramble=True, seed=rng).random(CANDIDATES)
        uniform = _encode_quantiles(self.space, sobol)
        candidates = np.vstack([uniform, incumbent[:INCUMBENT_STARTS]])
        values = score(candidates)
        feasible = np.ones(len(candidates), dtype=bool) if self.feasible is None else \
            np.array([self.feasible(self.space.decode(c)) is None for c in candidates])
        if not feasible.any():
            raise AlbertError(f"the search space gave no valid configuration in {len(candidates)} candidates; "
                              "narrow --space")
        values = np.where(feasible, values, -np.inf)
        top = int(np.argmax(values[:len(uniform)]))
        starts = [top] + [i for i in range(len(uniform), len(candidates)) if feasible[i]]
        weights = np.exp(values[:len(uniform)] - values[top])
        weights[top] = 0.0
        drawn = min(REFINE - len(starts), int(np.count_nonzero(weights > 0)))
        if drawn > 0:
            starts += list(rng.choice(len(uniform), size=drawn, replace=False, p=weights / weights.sum()))
        best = int(np.argmax(values))
        best_point, best_value = candidates[best], float(values[best])
        for i in dict.fromkeys(starts):
            point, value = self.refine(score, candidates[i], float(values[i]))
            if value > best_value:
                best_point, best_value = point, value
        return best_point, best_value

    def refine(self, score: Score, start: np.ndarray, start_value: float) -> tuple[np.ndarray, float]:
        """Local search from `start`: L-BFGS-B on the continuous coordinates (finite-difference
        gradients, all d + 1 points scored in one batch), then one-step moves of integers and
        choices, alternating until the discrete moves stop (at most ALTERNATIONS rounds)."""
        point, value = start.copy(), start_value
        idx = np.flatnonzero(self.continuous)
        for _ in range(ALTERNATIONS):
            if idx.size:
                point, value = self._continuous_step(score, point, value, idx)
            moved, new_value = self._discrete_step(score, point, value)
            if moved is None:
                break
            point, value = moved, new_value
        return point, value

    def _continuous_step(self, score: Score, point: np.ndarray, value: float, idx: np.ndarray):
        h = 1e-6

        def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
            batch = np.repeat(point[None, :], idx.size + 1, axis=0)
            batch[:, idx] = x
            # Forward differences inward from the upper bound, so no probe leaves the cube.
            steps = np.where(x + h > 1.0, -h, h)
            batch[np.arange(1, idx.size + 1), idx] += steps
            s = score(batch)
            return -float(s[0]), -(s[1:] - s[0]) / steps

        result = minimize(negative, point[idx], jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * idx.size,
                          options={"maxiter": LOCAL_ITERATIONS})
        if np.isfinite(result.fun) and -result.fun > value:
            moved = point.copy()
            moved[idx] = np.clip(result.x, 0.0, 1.0)
            # The search does not see the feasibility rule; a move that breaks it is not taken.
            if self.feasible is None or self.feasible(self.space.decode(moved)) is None:
                point, value = moved, -float(result.fun)
        return point, value

    def _discrete_step(self, score: Score, point: np.ndarray, value: float):
        neighbours = []
        for start, dist in self.blocks:
            if isinstance(dist, Choice):
                for k in range(dist.width):
                    if point[start + k] != 1.0:
                        p = point.copy()
                        p[start:start + dist.width] = 0.0
                        p[start + k] = 1.0
                        neighbours.append(p)
            elif isinstance(dist, IntUniform):
                n = dist.high - dist.low + 1
                for step in (-1.0 / n, 1.0 / n):
                    if 0.0 < point[start] + step < 1.0:
                        p = point.copy()
                        p[start] += step
                        neighbours.append(p)
        if self.feasible is not None:
            neighbours = [p for p in neighbours if self.feasible(self.space.decode(p)) is None]
        if not neighbours:
            return None, value
        batch = np.array(neighbours)
        values = score(batch)
        k = int(np.argmax(values))
        if values[k] > value:
            return batch[k], float(values[k])
        return None, value


def _encode_quantiles(space: Space, q: np.ndarray) -> np.ndarray:
    """encode(from_quantiles(row)) for every row of q, without building the configurations."""
    columns = []
    for j, name in enumerate(space.names):
        dist = space[name]
        if isinstance(dist, Choice):
            k = np.minimum((q[:, j] * dist.width).astype(int), dist.width - 1)
            columns.append(np.eye(dist.width)[k])
        elif isinstance(dist, IntUniform):
            n = dist.high - dist.low + 1
            columns.append(((np.minimum(np.floor(q[:, j] * n), n - 1) + 0.5) / n)[:, None])
        else:  # uniform and log-uniform: the unit coordinate is the quantile
            columns.append(q[:, j][:, None])
    return np.hstack(columns)
