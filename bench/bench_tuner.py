"""Tuner overhead per trial: albert's sweep vs Optuna, both persisting to SQLite, trivial objective.

Each trial samples two floats, reports one intermediate value and returns; everything else is
the tuner's own cost (sampling, scheduling, SQLite writes, and for albert the round trips to a
worker process). Run:

    python bench/bench_tuner.py [--trials 100] [--sampler random|gp] [--out runs/bench_tuner.json]

With `--sampler gp` both sides propose with a Gaussian process (albert's GP sampler, Optuna's
GPSampler), so the figure includes what a model-based proposal costs per trial.
Prints one summary line with the ratio and writes a JSON record.
"""
from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albert.atomic import write_json  # noqa: E402
from albert.tune.sweep import synthetic  # noqa: E402
from albert.tune.search.space import Space, Uniform  # noqa: E402
from albert.tune.sweep.run import SweepSettings, run_sweep  # noqa: E402


def bench_albert(trials: int, workdir: Path, sampler: str = "random") -> dict:
    space = Space({"x": Uniform(0.0, 1.0), "y": Uniform(0.0, 1.0)})
    settings = SweepSettings(sweep_dir=str(workdir / "albert"), task="bench", objective=synthetic.trivial,
                             space=space.to_json(), scheduler="random", min_resource=1, max_resource=1,
                             budget=trials, workers=1, progress=False, sampler=sampler)
    t0 = time.perf_counter()
    summary = run_sweep(settings)
    total = time.perf_counter() - t0
    # Steady state: from the end of the first trial to the end of the last, so the worker's
    # start-up (importing the objective) and the final report are left out.
    con = sqlite3.connect(workdir / "albert" / "sweep.db")
    first, last = con.execute("SELECT MIN(updated), MAX(updated) FROM trials").fetchone()
    con.close()
    assert summary["tried"] == trials and summary["states"] == {"completed": trials}
    return {"total_s": total, "steady_s": last - first, "per_trial_ms": 1000 * (last - first) / (trials - 1),
            "per_trial_ms_incl_startup": 1000 * total / trials, "proposal_s": summary["sampler"]["proposal_s"]}


def bench_optuna(trials: int, workdir: Path, sampler: str = "random") -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_float("y", 0.0, 1.0)
        value = -(x - 0.3) ** 2 - (y - 0.7) ** 2
        trial.report(value, 1)
        return value

    t0 = time.perf_counter()
    study = optuna.create_study(storage=f"sqlite:///{workdir / 'optuna.db'}", direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0) if sampler == "random"
                                else optuna.samplers.GPSampler(seed=0))
    study.optimize(objective, n_trials=1)  # same steady-state window as ours: after the first trial
    t1 = time.perf_counter()
    study.optimize(objective, n_trials=trials - 1)
    t2 = time.perf_counter()
    assert len(study.trials) == trials
    return {"total_s": t2 - t0, "steady_s": t2 - t1, "per_trial_ms": 1000 * (t2 - t1) / (trials - 1),
            "per_trial_ms_incl_startup": 1000 * (t2 - t0) / trials, "version": optuna.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--sampler", choices=("random", "gp"), default="random")
    ap.add_argument("--out", default="runs/bench_tuner.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ours = bench_albert(args.trials, Path(tmp), args.sampler)
        theirs = bench_optuna(args.trials, Path(tmp), args.sampler)
    ratio = ours["per_trial_ms"] / theirs["per_trial_ms"]
    record = {"bench": "tuner_overhead", "trials": args.trials, "sampler": args.sampler, "albert": ours, "optuna": theirs,
              "ratio_albert_over_optuna": ratio, "python": platform.python_version(), "cpus": os.cpu_count(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(args.out, record)
    print(f"tuner overhead per trial ({args.trials} trials, {args.sampler} sampler, SQLite): "
          f"albert {ours['per_trial_ms']:.2f} ms "
          f"(+{ours['total_s'] - ours['steady_s']:.2f} s start-up/report), optuna {theirs['version']} "
          f"{theirs['per_trial_ms']:.2f} ms, ratio {ratio:.2f}x -> {args.out}")


if __name__ == "__main__":
    main()
