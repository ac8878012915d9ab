#!/usr/bin/env python
"""Search fine-tuning hyperparameters with ASHA, and random search or Bayesian optimisation:
  python tune.py --task sst2 --budget 100 --preset tiny --output-dir runs/sweep
  python tune.py --task sst2 --budget 40 --sampler gp --model albert-base-v2 --output-dir runs/bo
  python tune.py --resume runs/sweep            # continue after a crash or Ctrl-C
  python tune.py --resume runs/sweep --budget 60 --workers 2   # budget, time and devices may change
"""
from albert.errors import cli_main
from albert.runconfig import UsageParser, add_arguments
from albert.tune.command import TuneArgs, run

HELP = {
    "budget": "number of configurations to try (pruned and failed ones count)",
    "time_budget": "seconds; after that no new trial starts",
    "output_dir": "the sweep directory",
    "resume": "continue the sweep in this directory (--budget, --time-budget, --workers, --trials-per-gpu, "
              "--device and --confirm-* may change; options that define the search may not)",
    "scheduler": "asha (promote the top 1/eta at each rung), hyperband (stop-only, like Ray's AsyncHyperBand) "
                 "or random (every trial to max_resource)",
    "min_resource": "training steps at the first rung (default: max_resource / eta^3)",
    "max_resource": "training steps of a full trial",
    "sampler": "random (independent draws) or gp (Gaussian-process Bayesian optimisation; with asha/hyperband "
               "it learns from every rung, pruned trials included)",
    "acquisition": "gp: ei (log expected improvement), pi (log probability of improvement) or ucb",
    "initial_trials": "gp: quasi-random (Sobol) trials before the model proposes (default: hyperparameters + 1, 4-10)",
    "space": "JSON search space, e.g. {\"lr\": {\"type\": \"loguniform\", \"low\": 1e-5, \"high\": 1e-4}}",
    "workers": "parallel trials on CPU",
    "trials_per_gpu": "parallel trials per GPU",
    "confirm_top": "re-train the K best configurations with --confirm-seeds more seeds, pick by the mean",
    "backend": "local (built-in scheduler and workers) or ray (Ray Tune's ASHA; pip install 'ray[tune]')",
    "model": "checkpoint every trial starts from",
    "preset": "random initialisation of this shape instead of --model",
}


@cli_main
def main() -> int:
    parser = UsageParser.make("tune.py", __doc__)
    add_arguments(parser, TuneArgs, HELP)
    given = vars(parser.parse_args())  # only the options on the command line
    summary = run(TuneArgs(**given), given=set(given))
    best = summary.get("best") or {}
    if best:
        print(f"best {best.get('metric')} (trial {best.get('trial_id')}); retrain with: "
              f"python train.py {summary.get('sweep_dir', '<sweep>')}/best/config.json")
    return 0


if __name__ == "__main__":
    main()
