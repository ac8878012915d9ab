"""The Gaussian-process sampler (`--sampler gp`): Bayesian optimisation over the search space.

For each new trial:
1. Inputs. Each configuration becomes a point of the unit cube (Space.encode: log scale for
   log-uniform, integers at their bin's centre, choices one-hot; the model sees one-hot
   coordinates scaled by 1/sqrt(2), so two options differ by a Hamming distance of 1). Under a
   multi-rung scheduler the model is fitted on the highest rung with d + 1 results (BOHB), the
   rungs of pruned trials included, and predicts what that rung will show.
   Diverged or failed trials count as the worst value seen: they mark a bad region.
2. Surrogate. scikit-learn's GaussianProcessRegressor: bias + constant x Matern 5/2 with one
   length scale per coordinate (ARD) + white noise, outputs standardised, kernel
   hyperparameters (noise included) fitted by maximum a posteriori (L-BFGS-B from one fixed
   start: length scales and signal at their priors' modes). The bias term is an unknown
   constant mean learnt from the data: far from every result the model predicts the level of
   a typical result, not their average, which on a landscape with a few good regions (most of
   tuning) keeps the search off unexplored corners and on refining what it found (measured:
   bench/README.md, "Search").
3. Running trials, and trials tried only below the modelled rung: their outcomes are unknown.
   The acquisition is averaged over joint posterior draws of them (fantasies.py): next to a
   running trial no improvement is left in any draw, and a fantasy that beats the incumbent
   raises it, so parallel workers do not pile onto one point and a paused trial is not proposed
   again. UCB, which has no improvement to average, instead conditions on their posterior means
   ("kriging believer") and penalises points near them by the model's correlation.
4. Acquisition (log EI by default, log PI or UCB) of the noise-free objective, against the best
   result observed (as Optuna's GPSampler), maximised by maximise.py: scrambled Sobol
   candidates, then local searches from ten of them (continuous and discrete moves in turn).

The first `initial_trials` proposals (and any made before two trials have a result) are a
scrambled Sobol design. With --warm-start (warmstart.py) earlier sweeps of the same objective
join the history and replace that design; other sources' best configurations replace it, and
their GPs' mean is the prior mean this model fits the residual from. Every random draw is
seeded by (master_seed, trial index), so a proposal is a pure function of the space, the seed,
the index, the history and the warm-start sources.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import minimize
from scipy.spatial.distance import cdist
from scipy.stats import qmc
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .acquisition import UCB_KAPPA
from .acquisition import acquisition as acquisition_function
from .fantasies import fantasy_score
from .maximise import Maximiser
from .sampler import Feasibility, History, Pending, Proposal, Sampler
from .space import Space

# Random restarts of the kernel fit, besides the fixed start. None: with the priors, the one
# start finds a fit that searches as well or better, at a third less cost (bench/README.md, "Search").
RESTARTS = 0
FIT_POINTS = 80         # the kernel's hyperparameters are fitted on at most this many results
INITIAL_TRIALS = 5      # quasi-random trials before the model proposes (--initial-trials)
# Priors on the kernel hyperparameters, which are fitted by maximum a posteriori: with them a
# fit from one start rarely lands on a degenerate optimum (length scales at a bound, everything
# explained as noise) when there are few results. Inputs are in the unit cube and outputs
# standardised, so one set fits every search space. Length scale l: -(0.1 / lam + 0.1 lam) on
# lam = 1 / l^2 (mode at l = 1, as Optuna's GPSampler), which keeps short length scales possible
# where the data ask for them; a Gamma(2, 1) on the signal variance and Gamma(1.1, 30) on the
# noise (small unless the data insist); the same Gamma(2, 1) on the bias (the constant mean's
# variance). ("gamma", shape, rate) or ("inverse_square", weight).
PRIORS = {"length_scale": ("inverse_square", 0.1), "constant_value": ("gamma", 2.0, 1.0),
          "noise_level": ("gamma", 1.1, 30.0)}


def default_initial_trials(space: Space) -> int:
    """Sobol points before the model takes over: with the bias term and the priors above, five
    did as well as ten or better on bench_search.py's problems (bench/README.md, "Search")."""
    return INITIAL_TRIALS


class GPSampler(Sampler):
    name = "gp"
    options = ("acquisition", "initial_trials")

    @classmethod
    def summary_fields(cls, settings: Any) -> dict[str, Any]:
        return {"acquisition": settings.acquisition, "initial_trials": settings.initial_trials or INITIAL_TRIALS}

    @classmethod
    def recommendation(cls, history: History, space: Space, rungs: list[int], mode: str,
                       seed: int) -> dict[str, Any] | None:
        """Of the configurations trained to full resource, the one a GP fitted on their results
        predicts best: a recommendation that does not chase one lucky noisy evaluation; and that
        GP's length scale per hyperparameter (on the unit cube: short where the metric changes
        quickly, long where it hardly depends on it). None with fewer than 3 such configurations."""
        full = sorted({o.trial_id for o in history.observations if o.resource >= max(rungs) and math.isfinite(o.value)})
        if len(full) < 3:
            return None
        model = Surrogate.fit(space, history, seed, min_points=3)
        configs = {o.trial_id: o.config for o in history.observations}
        mu, _ = model.predict(np.array([space.encode(configs[t]) for t in full]))
        k = int(np.argmax(mu))
        sign = 1.0 if mode == "max" else -1.0
        # A choice's options share one hyperparameter: its shortest length scale speaks for it.
        scales = model.length_scales()
        lengths = {name: round(float(scales[where].min()), 3) for name, where in space.coordinates().items()}
        return {"trial_id": full[k], "predicted": float(sign * model.metric(mu[k:k + 1])[0]),
                "hyperparameters": dict(configs[full[k]]), "results": len(full), "length_scales": lengths}

    def __init__(self, space: Space, master_seed: int = 0, feasible: Feasibility | None = None, *,
                 acquisition: str = "ei", initial_trials: int | None = None) -> None:
        super().__init__(space, master_seed, feasible)
        self.acquisition = acquisition
        self.score = acquisition_function(acquisition)
        self.initial_trials = initial_trials or default_initial_trials(space)
        self.maximiser = Maximiser(space, feasible)

    # --- the proposal ---------------------------------------------------------------------------

    def propose(self, index: int, history: History) -> Proposal:
        warm = self.warm
        if warm is not None:
            history = warm.with_evidence(history)
        finite = {o.trial_id for o in history.observations if math.isfinite(o.value)}
        # Evidence from earlier sweeps of this objective replaces the quasi-random design.
        design = index < self.initial_trials and not (warm is not None and warm.has_evidence)
        # While trials run, index >= initial_trials can come with few results: a model of two
        # points in six dimensions sends the parallel workers into one basin. A prior mean from
        # earlier sweeps informs the model from two.
        needed = 2 if warm is not None and warm.has_prior else self.initial_trials
        if design or len(finite) < needed:
            if warm is not None and index < self.initial_trials:
                return self.warm_config(index, self.initial_design(index))
            return self.initial_design(index)
        # Matrices of a few hundred rows: BLAS threads only add synchronisation (several times
        # the CPU on a busy machine), and the sweep's workers need the cores.
        with threadpool_limits(1):
            return self._propose(index, history)

    def _propose(self, index: int, history: History) -> Proposal:
        started = time.process_time()
        rng = np.random.default_rng([self.master_seed, index, 0xB0])
        # A rung is modelled once it has one result per hyperparameter and one more (BOHB's rule):
        # the first trials promoted are few and alike, and a model of them says little. (The
        # replay gains once credited to this rule came from a protocol that snapped proposals to
        # a small pool; bench/README.md "Search" has what the replay shows now.)
        min_points = max(self.initial_trials, len(self.space) + 1)
        seed = int(rng.integers(2**31))
        offset, weight = None, None
        prior = self.warm.prior_mean(self.master_seed) if self.warm is not None else None
        if prior is not None:
            own = len({o.trial_id for o in history.observations if math.isfinite(o.value) and o.trial_id > 0})
            weight = self.warm.prior_weight(own)
            offset = lambda points: weight * prior(points)  # noqa: E731
        model = Surrogate.fit(self.space, history, seed=seed, min_points=min_points, offset=offset)
        _, incumbent = model.incumbent()
        best = float(model.z.max())  # the best result observed, as Optuna's GPSampler
        # Trials tried only below the modelled rung (paused by the scheduler, or on their way up)
        # are, to this model, configurations whose result is not known yet: like running ones.
        # Left out, the model proposes one of them again and again, as it never sees them.
        waiting = history.pending + model.unseen(history)
        if waiting and self.acquisition != "ucb":
            # The pending trials' outcomes are unknown: score jointly over draws of them (fantasies.py).
            points = np.array([self.space.encode(p.config) for p in waiting])
            score = fantasy_score(model, points, best, self.score, rng)
        else:
            believer, believed = model.believing(waiting)
            # A running trial is believed to score its posterior mean; if that beats the incumbent,
            # improving on it is what a new proposal must do (else the point next to it looks as good).
            best = max([best, *believed])
            penalty = model.pending_penalty(waiting, self.acquisition)

            def score(points: np.ndarray) -> np.ndarray:
                mu, sigma = believer.predict(points)
                return self.score(mu, sigma, best) + penalty(points)

        point, value = self.maximiser.maximise(score, rng, incumbent)
        config = self.space.decode(point)
        return Proposal(config, {
            "how": "model", "acquisition": self.acquisition, "value": float(value), "incumbent": float(best),
            "observations": len(model.z), "pending": len(history.pending),
            "unseen": len(waiting) - len(history.pending), "rung": model.level, "target": model.target,
            "kernel": str(model.gp.kernel_),
            "length_scales": [round(float(v), 4) for v in model.length_scales()],
            **({"prior_weight": round(weight, 4)} if weight is not None else {}),
            "ms": round(1000 * (time.process_time() - started), 1)})

    def initial_design(self, index: int) -> Proposal:
        """Point `index` of a scrambled Sobol sequence seeded by master_seed (a random draw when
        that configuration is infeasible)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "balance properties": we take single points by design
            points = qmc.Sobol(len(self.space), scramble=True, seed=self.master_seed).random(index + 1)
        config = self.space.from_quantiles(points[index])
        if self.feasible(config) is None:
            return Proposal(config, {"how": "sobol"})
        return self.random_config(index)

class Surrogate:
    """A fitted GP over unit-cube configurations -> standardised metric, larger is better (a
    minimised metric is negated).

    Predictions, the incumbent and acquisition values are all in standardised units; `metric`
    maps a mean back. The scaling is fitted once per proposal, so a model conditioned on extra
    believed points keeps the units of the fit. `level` is the rung modelled."""

    def __init__(self, gp: Any, X: np.ndarray, z: np.ndarray, scaler: Any, space: Space,
                 level: int | None, scale: np.ndarray) -> None:
        self.gp, self.X, self.z, self.scaler = gp, X, z, scaler
        self.space, self.level = space, level
        self.scale = scale  # input_scale(space): what the kernel was fitted on
        self._factors: tuple | None = None  # predict's cache of the fitted posterior
        self.trials: frozenset[int] = frozenset()  # the trials whose results were modelled
        self.target = "metric"  # what the model predicts: "metric", or "loss" (see _targets)
        # A prior mean (warm start: model inputs -> standardised values) the GP models the
        # residual from; predictions add it back. None: the GP's own constant mean only.
        self.offset: Any = None

    @classmethod
    def fit(cls, space: Space, history: History, seed: int, min_points: int = 1, offset: Any = None) -> "Surrogate":
        """The GP over `history` (see the class); `offset`: a prior mean it models the residual from."""
        sign = 1.0 if history.mode == "max" else -1.0
        obs, level = _model_rung(history, min_points)
        values, target = _targets(obs, sign)
        finite = np.isfinite(values)
        # A diverged or failed trial is as bad as the worst seen: the model learns to avoid its region.
        values[~finite] = values[finite].min()
        scaler = StandardScaler()  # all values equal: a zero scale, which scikit-learn makes 1
        z = scaler.fit_transform(values[:, None])[:, 0]
        X = np.array([space.encode(o.config) for o in obs])
        d = X.shape[1]
        kernel = (ConstantKernel(0.1, (1e-3, 1e1)) + ConstantKernel(1.0, (1e-2, 1e2))
                  * Matern(length_scale=np.ones(d), length_scale_bounds=(1e-2, 2e1), nu=2.5)
                  + WhiteKernel(1e-3, (1e-6, 5e-1)))
        rng = np.random.RandomState(seed)
        # The marginal likelihood's gradient costs O(n^2 d) per step: fit the hyperparameters on
        # a subset (the best half and a seeded draw of the rest), then condition on everything.
        rows = _fit_subset(z, FIT_POINTS, rng)
        gp = GaussianProcessRegressor(kernel, n_restarts_optimizer=RESTARTS, optimizer=_map_optimizer(kernel),
                                      random_state=rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a hyperparameter at its bound is fine (e.g. no noise)
            scale = input_scale(space)
            gp.fit(X[rows] * scale, z[rows] - (offset(X[rows]) if offset is not None else 0.0))
        model = cls(gp, X, z, scaler, space, level, scale)
        model.offset = offset
        model = model.conditioned(X, z) if len(rows) < len(z) else model
        model.trials = frozenset(o.trial_id for o in obs)
        model.target = target
        return model

    def conditioned(self, X: np.ndarray, z: np.ndarray) -> "Surrogate":
        """The fitted kernel, conditioned on (X, z) (standardised outputs) instead."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp = GaussianProcessRegressor(self.gp.kernel_, optimizer=None).fit(
                X * self.scale, z - (self.offset(X) if self.offset is not None else 0.0))
        model = Surrogate(gp, X, z, self.scaler, self.space, self.level, self.scale)
        model.offset = self.offset
        return model

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the noise-free objective, in standardised
        units (larger is better). The observation noise is left out of the spread: it is no
        improvement to hope for, and with it a point already tried keeps a floor of expected
        improvement that draws the search back to it instead of refining."""
        # What GaussianProcessRegressor.predict computes, from its fitted Cholesky factor and
        # weights, without its per-call validation and kernel bookkeeping: the acquisition is
        # scored on a few points at a time thousands of times per proposal, where that overhead
        # was most of the cost (tests/tune/search/test_gp.py checks it against predict).

        if self._factors is None:
            kernel, gp = self.gp.kernel_, self.gp
            length = self.length_scales()
            self._factors = (kernel.k1.k1.constant_value, kernel.k1.k2.k1.constant_value, length,
                             gp.X_train_ / length, gp.alpha_, gp.L_)
        bias, signal, length, train, alpha, L = self._factors
        r = math.sqrt(5.0) * cdist(np.atleast_2d(points) * self.scale / length, train)
        k = bias + signal * (1.0 + r + r * r / 3.0) * np.exp(-r)
        v = solve_triangular(L, k.T, lower=True, check_finite=False)
        latent = np.maximum(bias + signal - np.einsum("ij,ij->j", v, v), 0.0)
        mean = k @ alpha + (self.offset(np.atleast_2d(points)) if self.offset is not None else 0.0)
        return mean, np.sqrt(latent + 1e-12)

    def covariance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The posterior covariance of the noise-free objective between the rows of `a` and of
        `b` (model inputs; standardised units): k(a, b) - k(a, X) K^-1 k(X, b)."""
        self.predict(np.atleast_2d(a)[:1])  # fills the cache of the fitted factors
        bias, signal, length, train, _, L = self._factors
        ua, ub = np.atleast_2d(a) * self.scale / length, np.atleast_2d(b) * self.scale / length

        def kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # x, y: divided by the length scales
            r = math.sqrt(5.0) * cdist(x, y)
            return bias + signal * (1.0 + r + r * r / 3.0) * np.exp(-r)

        va = solve_triangular(L, kernel(train, ua), lower=True, check_finite=False)
        vb = solve_triangular(L, kernel(train, ub), lower=True, check_finite=False)
        return kernel(ua, ub) - va.T @ vb

    def length_scales(self) -> np.ndarray:
        """The fitted length scale of each model input (ARD; on the scaled unit cube): a short
        one marks a hyperparameter the metric is sensitive to."""
        return np.broadcast_to(self.gp.kernel_.k1.k2.k2.length_scale, (self.X.shape[1],)).astype(float)

    def metric(self, standardised: np.ndarray) -> np.ndarray:
        """Standardised values back in the metric's units (still larger is better)."""
        return self.scaler.inverse_transform(np.asarray(standardised, dtype=float).reshape(-1, 1))[:, 0]

    def incumbent(self, k: int = 3) -> tuple[float, np.ndarray]:
        """The best posterior mean over the configurations tried (robust to a lucky noisy result),
        and the k configurations with the best means (unit cube)."""
        configs = np.unique(self.X, axis=0)
        mu, _ = self.predict(configs)
        order = np.argsort(-mu, kind="stable")[:k]
        return float(mu[order[0]]), configs[order]

    def unseen(self, history: History) -> tuple[Pending, ...]:
        """The trials with results only below the modelled rung (none pending), as pending ones."""
        pending = {p.trial_id for p in history.pending}
        configs = {o.trial_id: o.config for o in history.observations
                   if o.trial_id not in self.trials and o.trial_id not in pending}
        return tuple(Pending(t, c, history.max_resource) for t, c in sorted(configs.items()))

    def believing(self, pending: tuple) -> tuple["Surrogate", list[float]]:
        """The model conditioned also on the pending configurations, as if they had scored the
        posterior mean there ("kriging believer"); and those means."""
        if not pending:
            return self, []
        P = np.array([self.space.encode(p.config) for p in pending])
        mu, _ = self.predict(P)
        model = self.conditioned(np.vstack([self.X, P]), np.concatenate([self.z, mu]))
        model.X, model.z = self.X, self.z  # the incumbent stays among the real results
        return model, [float(v) for v in mu]

    def pending_penalty(self, pending: tuple, acquisition: str):
        """points -> a score to add: sum over running trials of log(1 - correlation with them).

        The believer alone lowers the uncertainty next to a running trial, but log EI there can
        stay the highest in the space (a good region), and parallel workers then train near
        copies. This local penalty (after Gonzalez et al., "Batch Bayesian optimization via local
        penalization", 2016, with the model's own correlation as the exclusion zone) is -0.7 at
        one length scale from a running trial and -inf on it. It is added to log EI and log PI
        as is, and to UCB in units of its exploration bonus at the prior's spread."""
        if not pending:
            return lambda points: 0.0
        P = np.array([self.space.encode(p.config) for p in pending])
        correlation = self.gp.kernel_.k1.k2.k2  # the Matern part: 1 at distance 0
        weight = UCB_KAPPA * math.sqrt(self.gp.kernel_.k1.k2.k1.constant_value) \
            if acquisition == "ucb" else 1.0

        def penalty(points: np.ndarray) -> np.ndarray:
            rho = np.minimum(correlation(points * self.scale, P * self.scale), 1.0 - 1e-12)
            return weight * np.log1p(-rho).sum(axis=1)

        return penalty


def _targets(obs: tuple, sign: float) -> tuple[np.ndarray, str]:
    """The values the model fits, larger is better (NaN: failed), and what they are.

    The metric, unless more than half of the finite results share one value (early in
    training every model may still predict the majority class, or tag every word O: F1 0) and
    every one of them came with a validation loss: then the negated loss, which still ranks
    those models better than the tied metric (bench/README.md, "Search")."""
    metric = np.array([sign * o.value for o in obs], dtype=float)
    finite = np.isfinite(metric)
    if not finite.any():
        return metric, "metric"
    loss = np.array([-o.loss for o in obs], dtype=float)
    _, counts = np.unique(metric[finite], return_counts=True)
    if 2 * counts.max() > finite.sum() and np.isfinite(loss[finite]).all():
        return np.where(finite, loss, np.nan), "loss"
    return metric, "metric"


def _model_rung(history: History, min_points: int) -> tuple[tuple, int | None]:
    """The observations to model: those at the highest rung where at least `min_points` trials
    have a finite result (else the lowest rung), plus every failed trial as a failure there
    (a diverged configuration is bad at any budget). As BOHB: pruned trials are the data of the
    low rungs, which the model uses until enough trials are trained further."""
    rungs = sorted(history.rungs or {o.resource for o in history.observations})

    def rung_of(resource: int) -> int:
        below = [r for r in rungs if r <= resource]
        return below[-1] if below else rungs[0]

    by_rung: dict[int, list] = {}
    for o in history.observations:
        by_rung.setdefault(rung_of(o.resource), []).append(o)
    levels = sorted(by_rung)
    level = levels[0]
    for r in reversed(levels):
        if len({o.trial_id for o in by_rung[r] if math.isfinite(o.value)}) >= min_points:
            level = r
            break
    chosen = list(by_rung[level])
    present = {o.trial_id for o in chosen}
    for o in history.observations:
        if not math.isfinite(o.value) and o.trial_id not in present:
            chosen.append(o)
            present.add(o.trial_id)
    return tuple(chosen), level


def _map_optimizer(kernel: Any):
    """The kernel fit for scikit-learn: L-BFGS-B on `_map_objective`, from `initial_theta`."""
    def optimizer(obj_func, initial_theta, bounds):
        result = minimize(_map_objective(kernel, obj_func), initial_theta, method="L-BFGS-B", jac=True,
                          bounds=bounds, options={"maxiter": 200})
        return result.x, result.fun

    return optimizer


def _map_objective(kernel: Any, obj_func):
    """theta -> (value, gradient): scikit-learn's negative log marginal likelihood `obj_func` plus
    the negative log density of PRIORS (a maximum a posteriori fit).

    scikit-learn's theta is the log of each hyperparameter p. A Gamma(a, b) prior on p adds
    -(a - 1) theta + b exp(theta) (up to a constant) to the objective; the inverse-square prior
    w (1 / lam + lam) with lam = exp(-2 theta)."""
    gamma_a, gamma_b, inverse_w = [], [], []
    for hp in kernel.hyperparameters:
        prior = PRIORS[hp.name.rsplit("__", 1)[-1]]
        a, b, w = (prior[1], prior[2], 0.0) if prior[0] == "gamma" else (1.0, 0.0, prior[1])
        gamma_a += [a] * hp.n_elements
        gamma_b += [b] * hp.n_elements
        inverse_w += [w] * hp.n_elements
    gamma_a, gamma_b, inverse_w = np.array(gamma_a), np.array(gamma_b), np.array(inverse_w)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = obj_func(theta)
        e, up, down = np.exp(theta), np.exp(2 * theta), np.exp(-2 * theta)
        prior = np.sum(-(gamma_a - 1) * theta + gamma_b * e + inverse_w * (up + down))
        prior_grad = -(gamma_a - 1) + gamma_b * e + 2 * inverse_w * (up - down)
        return value + float(prior), grad + prior_grad

    return objective


def _fit_subset(values: np.ndarray, limit: int, rng: np.random.RandomState) -> np.ndarray:
    """Row indices to fit the hyperparameters on: all of them, or the best limit/2 and a random
    limit/2 of the others (sorted, so the fit does not depend on the draw's order)."""
    n = len(values)
    if n <= limit:
        return np.arange(n)
    order = np.argsort(-values, kind="stable")
    best, rest = order[: limit // 2], order[limit // 2:]
    return np.sort(np.concatenate([best, rng.choice(rest, limit - len(best), replace=False)]))


def input_scale(space: Space) -> np.ndarray:
    """Per model input: 1, or 1/sqrt(2) on a choice's one-hot coordinates, so that two different
    options are at distance 1 (a Hamming distance) like two ends of a numeric range, not sqrt(2)."""
    return np.array([math.sqrt(0.5) if k == "onehot" else 1.0 for k in space.kinds()])
