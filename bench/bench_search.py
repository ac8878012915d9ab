"""Search quality and cost: albert's samplers vs Optuna's, side by side in one run.

    python bench/bench_search.py            # 10 seeds x 50 evaluations on each problem (about 20 CPU-minutes)
    python bench/bench_search.py --quick    # 3 seeds x 25 evaluations
    python bench/bench_search.py --parallel # proposals while others run -> bench/results/search-batch.json
    python bench/bench_search.py --cost-only --problems hartmann6,mixed5   # CPU ms per proposal only

Run with OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 for one thread each (Optuna's GPSampler is torch).
--parallel: 20 seeds x 48 evaluations, each problem in two modes - "batch" (ask 4, then tell
all 4) and "async" (4 in flight: each proposal made while 3 run, the oldest told first) - for
albert-gp, Optuna's GPSampler (which sees the running trials) and TPE with constant_liar=True;
median regret at 48 evaluations, CPU ms per proposal, and albert-gp vs GPSampler seed by seed
(sign test). Problems can run as separate processes (--problems, --out), then --merge their records.

Problems (all minimised; regret = best value found - the known minimum):
  branin     2-D, three global minima of 0.397887
  hartmann6  6-D on [0, 1]^6, minimum -3.32237
  mixed5     log-uniform lr, a 4-way categorical batch size and 3 uniforms, minimum 0
Samplers: albert random and gp (log EI); Optuna RandomSampler, TPESampler(multivariate=True)
and GPSampler, each with its defaults and the same seed.

Printed: median simple regret at 10/25/50 evaluations over the seeds, median CPU ms per
proposal, and ratios to Optuna's GPSampler; then the proposal cost at 50 and 200 trials of
history, and the spread of 4 proposals made while 3 trials are pending (minimum pairwise
distance in the unit square on Branin, median over seeds; TPE with constant_liar=True as the
peer). Writes a JSON record with every curve (--out).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albert.atomic import write_json  # noqa: E402
from albert.tune.search.sampler import History, Observation, Pending  # noqa: E402
from albert.tune.sweep.settings import make_sampler  # noqa: E402
from albert.tune.search.space import Choice, LogUniform, Space, Uniform  # noqa: E402

# --- problems ---------------------------------------------------------------------------------


def branin(c: dict[str, Any]) -> float:
    x1, x2 = c["x1"], c["x2"]
    b, cc, r, s, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + cc * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                 [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(c: dict[str, Any]) -> float:
    x = np.array([c[f"x{i}"] for i in range(6)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


_BATCH_PENALTY = {16: 0.3, 32: 0.0, 64: 0.1, 128: 0.5}


def mixed5(c: dict[str, Any]) -> float:
    """A fine-tuning-like landscape: a log-scale optimum in lr, one best batch size, and a
    correlated bowl in the three uniforms."""
    lr = math.log10(c["lr"]) + 3.2
    u1, u2, u3 = c["u1"] - 0.3, c["u2"] - 0.6, c["u3"] - 0.2
    return (lr ** 2 / 4 + _BATCH_PENALTY[c["batch_size"]] + u1 ** 2 + 2 * u2 ** 2 + 0.5 * u3 ** 2
            + 0.3 * u1 * u2 + 0.2 * lr * u1)


PROBLEMS: dict[str, tuple[Space, Callable[[dict[str, Any]], float], float]] = {
    "branin": (Space({"x1": Uniform(-5.0, 10.0), "x2": Uniform(0.0, 15.0)}), branin, 0.397887357729739),
    "hartmann6": (Space({f"x{i}": Uniform(0.0, 1.0) for i in range(6)}), hartmann6, -3.32236801141551),
    "mixed5": (Space({"lr": LogUniform(1e-5, 1e-1), "batch_size": Choice([16, 32, 64, 128]), "u1": Uniform(0.0, 1.0),
                      "u2": Uniform(0.0, 1.0), "u3": Uniform(0.0, 1.0)}), mixed5, 0.0),
}
CHECKPOINTS = (10, 25, 50)


# --- albert -----------------------------------------------------------------------------------

def run_albert(name: str, space: Space, fn, seed: int, n: int) -> tuple[list[float], list[float]]:
    sampler = make_sampler(name, space, master_seed=seed)
    observations: list[Observation] = []
    values, cpu_ms = [], []
    for i in range(n):
        history = History(tuple(observations), (), "min", 1, 1)
        t0 = time.process_time()
        config = sampler.propose(i, history).config
        cpu_ms.append(1000 * (time.process_time() - t0))
        value = fn(config)
        observations.append(Observation(i, config, 1, value))
        values.append(value)
    return values, cpu_ms


# --- optuna -----------------------------------------------------------------------------------

def optuna_distributions(space: Space) -> dict[str, Any]:
    import optuna.distributions as od

    out = {}
    for name, dist in space.items():
        if isinstance(dist, LogUniform):
            out[name] = od.FloatDistribution(dist.low, dist.high, log=True)
        elif isinstance(dist, Uniform):
            out[name] = od.FloatDistribution(dist.low, dist.high)
        elif isinstance(dist, Choice):
            out[name] = od.CategoricalDistribution(list(dist.options))
        else:
            raise ValueError(name)
    return out


def optuna_sampler(name: str, seed: int):
    import optuna

    if name == "optuna-random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "optuna-gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(name)


def run_optuna(name: str, space: Space, fn, seed: int, n: int) -> tuple[list[float], list[float]]:
    import optuna

    study = optuna.create_study(direction="minimize", sampler=optuna_sampler(name, seed))
    dists = optuna_distributions(space)
    values, cpu_ms = [], []
    for _ in range(n):
        t0 = time.process_time()
        trial = study.ask(dists)
        cpu_ms.append(1000 * (time.process_time() - t0))
        value = fn(trial.params)
        study.tell(trial, value)
        values.append(value)
    return values, cpu_ms


# --- parallel proposals: a batch of 4 at a time, or asynchronous with 3 pending ---------------------

PARALLEL = 4  # trials in flight: a batch's size, or the proposal plus the 3 pending of the asynchronous mode


def _parallel_loop(ask: Callable[[int], Any], tell: Callable[[Any], float], n: int, mode: str) -> list[float]:
    """Drive ask(index) -> handle and tell(handle) -> value for n evaluations: "batch" asks 4,
    then tells all 4; "async" keeps 4 in flight (each ask sees 3 pending), telling the oldest."""
    values, flight, asked = [], [], 0
    while len(values) < n:
        while len(flight) < PARALLEL and asked < n:
            flight.append(ask(asked))
            asked += 1
        if mode == "batch":
            values += [tell(h) for h in flight]
            flight = []
        else:
            values.append(tell(flight.pop(0)))
    return values


def run_albert_parallel(space: Space, fn, seed: int, n: int, mode: str) -> tuple[list[float], list[float]]:
    sampler = make_sampler("gp", space, master_seed=seed)
    observations: list[Observation] = []
    pending: dict[int, Pending] = {}
    cpu_ms: list[float] = []

    def ask(i: int) -> int:
        t0 = time.process_time()
        config = sampler.propose(i, History(tuple(observations), tuple(pending.values()), "min", 1, 1)).config
        cpu_ms.append(1000 * (time.process_time() - t0))
        pending[i] = Pending(i, config, 1)
        return i

    def tell(i: int) -> float:
        config = pending.pop(i).config
        value = fn(config)
        observations.append(Observation(i, config, 1, value))
        return value

    return _parallel_loop(ask, tell, n, mode), cpu_ms


def run_optuna_parallel(name: str, space: Space, fn, seed: int, n: int, mode: str) -> tuple[list[float], list[float]]:
    import optuna

    sampler = optuna.samplers.GPSampler(seed=seed) if name == "optuna-gp" else \
        optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    dists = optuna_distributions(space)
    cpu_ms: list[float] = []

    def ask(i: int):
        t0 = time.process_time()
        trial = study.ask(dists)  # the trials asked and not told are RUNNING: both samplers see them
        cpu_ms.append(1000 * (time.process_time() - t0))
        return trial

    def tell(trial) -> float:
        value = fn(trial.params)
        study.tell(trial, value)
        return value

    return _parallel_loop(ask, tell, n, mode), cpu_ms


PARALLEL_SAMPLERS = {"albert-gp": run_albert_parallel,
                     "optuna-gp": lambda *a: run_optuna_parallel("optuna-gp", *a),
                     "optuna-tpe-liar": lambda *a: run_optuna_parallel("optuna-tpe-liar", *a)}


def parallel_main(args: argparse.Namespace) -> None:
    """--parallel: both modes on each problem, albert-gp vs Optuna GPSampler and TPE (constant liar)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    seeds, evals = args.seeds or 20, args.evals or 48
    record: dict[str, Any] = {"bench": "search-parallel", "seeds": seeds, "evals": evals, "in_flight": PARALLEL,
                              "optuna": optuna.__version__, "python": platform.python_version(),
                              "threads": _threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": {}}
    samplers, modes = args.samplers.split(","), args.modes.split(",")
    finals: dict[str, dict[str, list[float]]] = {}
    costs: dict[str, dict[str, list[float]]] = {}
    # Seed by seed, every sampler and mode: the record written after each seed holds paired
    # results only, so a run cut short still compares like with like.
    for seed in range(seeds):
        for problem in args.problems.split(","):
            space, fn, optimum = PROBLEMS[problem]
            for mode in modes:
                key = f"{problem}/{mode}"
                for sampler in samplers:
                    values, cpu_ms = PARALLEL_SAMPLERS[sampler](space, fn, seed, evals, mode)
                    finals.setdefault(key, {}).setdefault(sampler, []).append(min(values) - optimum)
                    costs.setdefault(key, {}).setdefault(sampler, []).extend(cpu_ms)
                record["runs"][key] = _parallel_rows(finals[key], costs[key])
        record["seeds_done"] = seed + 1
        _save_parallel(args, record)
    for key, rows in record["runs"].items():
        for sampler in samplers:
            print(f"{key:18s} {sampler:16s} regret@{evals} median {rows[sampler]['median_regret']:.3g}  "
                  f"{rows[sampler]['ms_per_proposal']:.1f} ms/proposal", flush=True)
        if "vs_optuna_gp" in rows:
            v = rows["vs_optuna_gp"]
            print(f"{key:18s} albert-gp vs optuna-gp: ahead {v['ahead']}, behind {v['behind']} (sign test p "
                  f"{v['sign_test_p']:.3g}); median no worse: {v['no_worse_median']}", flush=True)
    print(f"-> {args.out}")


def _parallel_rows(finals: dict[str, list[float]], costs: dict[str, list[float]]) -> dict[str, Any]:
    rows: dict[str, Any] = {s: {"median_regret": statistics.median(f), "regret": f,
                                "ms_per_proposal": statistics.median(costs[s])} for s, f in finals.items()}
    if "albert-gp" in rows and "optuna-gp" in rows:
        ours, theirs = finals["albert-gp"], finals["optuna-gp"]
        ahead, behind = sum(a < b for a, b in zip(ours, theirs)), sum(a > b for a, b in zip(ours, theirs))
        rows["vs_optuna_gp"] = {"ahead": ahead, "behind": behind, "sign_test_p": _sign_test(ahead, behind),
                                "no_worse_median": rows["albert-gp"]["median_regret"]
                                <= rows["optuna-gp"]["median_regret"]}
    return rows


def _save_parallel(args: argparse.Namespace, record: dict[str, Any]) -> None:
    write_json(args.out, record)


def merge_parallel(paths: list[str], out: str) -> None:
    """--merge: one record from --parallel runs of different problems (run as separate processes)."""
    import json

    records = [json.loads(Path(p).read_text()) for p in paths]
    merged = {**records[0], "runs": {k: v for r in records for k, v in r["runs"].items()},
              "seeds_done": min(r.get("seeds_done", 0) for r in records), "parts": paths}
    write_json(out, merged)
    print(f"-> {out}")


def _sign_test(ahead: int, behind: int) -> float:
    """Two-sided sign test (ties dropped)."""
    from scipy.stats import binomtest

    n = ahead + behind
    return float(binomtest(ahead, n).pvalue) if n else 1.0


def _threads() -> dict[str, Any]:
    import torch

    return {"torch": torch.get_num_threads(), **{k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


SAMPLERS = {"albert-random": lambda *a: run_albert("random", *a), "albert-gp": lambda *a: run_albert("gp", *a),
            "optuna-random": lambda *a: run_optuna("optuna-random", *a),
            "optuna-tpe": lambda *a: run_optuna("optuna-tpe", *a), "optuna-gp": lambda *a: run_optuna("optuna-gp", *a)}


# --- cost at a given history size -----------------------------------------------------------------

def random_history(space: Space, fn, n: int, seed: int) -> list[tuple[dict[str, Any], float]]:
    return [(c, fn(c)) for c in (space.sample(10_000 + seed, i) for i in range(n))]


def cost_albert(space: Space, fn, n: int, seed: int, repeats: int) -> float:
    history = random_history(space, fn, n, seed)
    obs = tuple(Observation(i, c, 1, v) for i, (c, v) in enumerate(history))
    sampler = make_sampler("gp", space, master_seed=seed)
    times = []
    for k in range(repeats):
        t0 = time.process_time()
        sampler.propose(n + k, History(obs, (), "min", 1, 1))
        times.append(1000 * (time.process_time() - t0))
    return statistics.median(times)


def cost_optuna(space: Space, fn, n: int, seed: int, repeats: int) -> float:
    import optuna

    dists = optuna_distributions(space)
    history = random_history(space, fn, n, seed)
    times = []
    for k in range(repeats):
        study = optuna.create_study(direction="minimize", sampler=optuna_sampler("optuna-gp", seed + k))
        study.add_trials([optuna.trial.create_trial(params=c, distributions=dists, value=v) for c, v in history])
        t0 = time.process_time()
        study.ask(dists)
        times.append(1000 * (time.process_time() - t0))
    return statistics.median(times)


def proposal_cost(problems: list[str], sizes: tuple[int, ...], repeats: int) -> dict[str, Any]:
    """CPU ms of one proposal, albert-gp and Optuna's GPSampler, after n random trials of history."""
    out: dict[str, Any] = {}
    for problem in problems:
        space, fn, _ = PROBLEMS[problem]
        for n in sizes:
            ours, theirs = cost_albert(space, fn, n, 0, repeats), cost_optuna(space, fn, n, 0, repeats)
            out[f"{problem}/{n}" if len(problems) > 1 else n] = {"albert_gp_ms": ours, "optuna_gp_ms": theirs,
                                                                  "ratio": ours / theirs}
            print(f"proposal cost, {problem} with {n} trials of history: albert-gp {ours:.0f} ms, "
                  f"optuna-gp {theirs:.0f} ms CPU, ratio {ours / theirs:.2f}x", flush=True)
    return out


# --- spread of proposals made while others are pending -------------------------------------------------

def _min_distance(points: list[np.ndarray]) -> float:
    return min(float(np.linalg.norm(a - b)) for i, a in enumerate(points) for b in points[i + 1:])


def spread_albert(space: Space, fn, seed: int, observed: int = 10) -> float:
    history = random_history(space, fn, observed, seed)
    obs = tuple(Observation(i, c, 1, v) for i, (c, v) in enumerate(history))
    sampler = make_sampler("gp", space, master_seed=seed)
    pending: list[Pending] = []
    proposals = []
    for k in range(7):  # 3 pending, then 4 proposals while they (and the earlier of the 4) run
        config = sampler.propose(observed + k, History(obs, tuple(pending), "min", 1, 1)).config
        pending.append(Pending(observed + k, config, 1))
        if k >= 3:
            proposals.append(space.encode(config))
    return _min_distance(proposals)


def spread_tpe(space: Space, fn, seed: int, observed: int = 10) -> float:
    import optuna

    dists = optuna_distributions(space)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(
        seed=seed, multivariate=True, constant_liar=True))
    study.add_trials([optuna.trial.create_trial(params=c, distributions=dists, value=v)
                      for c, v in random_history(space, fn, observed, seed)])
    trials = [study.ask(dists) for _ in range(7)]  # none told: all still running
    return _min_distance([space.encode(t.params) for t in trials[3:]])


# --- the run ------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, 25 evaluations")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--evals", type=int, default=None)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--out", default=None, help="default bench/results/search.json (search-batch.json with --parallel)")
    ap.add_argument("--parallel", action="store_true",
                    help="proposals made while others run: batches of 4 and asynchronous with 3 pending, "
                         "albert-gp vs Optuna GPSampler and TPE (constant liar); 20 seeds x 48 evaluations")
    ap.add_argument("--modes", default="batch,async", help="--parallel: batch, async or both")
    ap.add_argument("--cost-only", action="store_true",
                    help="only the proposal cost at 25, 50 and 200 trials of history (--problems), both GP samplers")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="--parallel: merge the records of runs split across processes into --out")
    args = ap.parse_args()
    if args.parallel:
        if args.samplers == ",".join(SAMPLERS):
            args.samplers = ",".join(PARALLEL_SAMPLERS)
        args.out = args.out or "bench/results/search-batch.json"
        return merge_parallel(args.merge, args.out) if args.merge else parallel_main(args)
    args.out = args.out or "bench/results/search.json"
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    seeds = args.seeds or (3 if args.quick else 10)
    evals = args.evals or (25 if args.quick else 50)
    checkpoints = [c for c in CHECKPOINTS if c <= evals]
    problems = args.problems.split(",")
    samplers = args.samplers.split(",")
    record: dict[str, Any] = {"bench": "search", "seeds": seeds, "evals": evals, "optuna": optuna.__version__,
                              "python": platform.python_version(), "cpus": os.cpu_count(),
                              "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "problems": {}}
    if args.cost_only:  # the proposal cost alone, at 25, 50 and 200 trials of history
        record["proposal_cost"] = proposal_cost(problems, (25, 50, 200), 5)
        record["threads"] = _threads()
        write_json(args.out, record)
        print(f"-> {args.out}")
        return
    for problem in problems:
        space, fn, optimum = PROBLEMS[problem]
        rows: dict[str, Any] = {}
        for sampler in samplers:
            curves, costs = [], []
            for seed in range(seeds):
                values, cpu_ms = SAMPLERS[sampler](space, fn, seed, evals)
                curves.append([min(values[:k + 1]) - optimum for k in range(evals)])
                costs.extend(cpu_ms)
            rows[sampler] = {"regret": {c: statistics.median(curve[c - 1] for curve in curves) for c in checkpoints},
                             "ms_per_proposal": statistics.median(costs), "curves": curves}
            print(f"{problem:10s} {sampler:14s} " + "  ".join(f"regret@{c} {rows[sampler]['regret'][c]:.3g}"
                                                            for c in checkpoints)
                  + f"  {rows[sampler]['ms_per_proposal']:.1f} ms/proposal", flush=True)
        if "optuna-gp" in rows and "albert-gp" in rows:
            ours, theirs = rows["albert-gp"], rows["optuna-gp"]
            verdict = {c: ours["regret"][c] <= theirs["regret"][c] for c in checkpoints if c >= 25}
            print(f"{problem:10s} albert-gp / optuna-gp: regret " + "  ".join(
                f"@{c} {ours['regret'][c] / max(theirs['regret'][c], 1e-300):.3g}x" for c in checkpoints)
                + f"  ms {ours['ms_per_proposal'] / theirs['ms_per_proposal']:.2f}x"
                + f"  no worse at 25/50: {all(verdict.values())}", flush=True)
            rows["no_worse_than_optuna_gp"] = verdict
        record["problems"][problem] = rows

    record["proposal_cost"] = proposal_cost(["hartmann6"], (50, 200), 3 if args.quick else 5)

    space, fn, _ = PROBLEMS["branin"]
    ours = [spread_albert(space, fn, s) for s in range(seeds)]
    theirs = [spread_tpe(space, fn, s) for s in range(seeds)]
    record["pending_spread"] = {"albert_gp": ours, "optuna_tpe_constant_liar": theirs,
                                "albert_median": statistics.median(ours), "tpe_median": statistics.median(theirs)}
    print(f"4 proposals while 3 pending (branin, unit square): min pairwise distance, median over {seeds} seeds: "
          f"albert-gp {statistics.median(ours):.3f}, optuna TPE constant liar {statistics.median(theirs):.3f}")
    write_json(args.out, record)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
