#!/usr/bin/env python
"""Search fine-tuning hyperparameters with ASHA, and random search or Bayesian optimisation:
  python tune.py --budget 100                   # ner, from the newest runs/pretrain-*/final, into runs/tune-ner-<time>
  python tune.py --task sst2 --budget 100 --preset tiny --output-dir runs/sweep
  python tune.py --task sst2 --budget 40 --sampler gp --model albert-base-v2 --output-dir runs/bo
  python tune.py --resume runs/sweep            # continue after a crash or Ctrl-C
  python tune.py --resume runs/sweep --budget 60 --workers 2   # budget, time and devices may change
"""
import sys

from albert.errors import cli_main
from albert.finetune import HELP as FINETUNE_HELP
from albert.runconfig import UsageParser
from albert.tune.command import add_options, run

HELP = {
    "task": "the task to tune (default: ner, CoNLL-2003, as finetune.py --task ner)",
    "report_to": "also write TensorBoard HParams (each trial's hyperparameters and metric) under "
                 "<sweep>/tensorboard; skipped with a note when tensorboard is not installed",
    "budget": "number of configurations to try (pruned and failed ones count)",
    "time_budget": "seconds; after that no new trial starts",
    "output_dir": "the sweep directory (default: a new runs/tune-<task>-<time>)",
    "resume": "continue the sweep in this directory (--budget, --time-budget, --workers, --trials-per-gpu, "
              "--device and --confirm-* may change; options that define the search may not)",
    "scheduler": "asha (promote the top 1/eta at each rung), hyperband (stop-only, like Ray's AsyncHyperBand) "
                 "or random (every trial to max_resource)",
    "min_resource": "training steps at the first rung (default: max_resource / eta^2 rounded up: three rungs)",
    "max_resource": "training steps of a full trial",
    "sampler": "random (independent draws) or gp (Gaussian-process Bayesian optimisation; with asha/hyperband "
               "it learns from every rung, pruned trials included)",
    "acquisition": "gp: ei (log expected improvement), pi (log probability of improvement) or ucb",
    "initial_trials": "gp: quasi-random (Sobol) trials before the model proposes (default 5)",
    "warm_start": "earlier sweep directories to learn from: the same task and model count as results of this "
                  "sweep; another task or model guides it as a prior that fades as its own results come in; "
                  "either way the first trials try their best configurations (default: none, a cold start)",
    "space": "JSON search space, e.g. {\"lr\": {\"type\": \"loguniform\", \"low\": 1e-5, \"high\": 1e-4}} "
             "(default: the paper's ranges, the learning rate's adapted to the starting point)",
    "eta": "ASHA's reduction factor: a rung keeps the best 1/eta of its trials, each rung eta times longer",
    "seed": "master seed: the configurations drawn and every trial's training seed follow from it",
    "confirm_seeds": "extra seeds each --confirm-top configuration is re-trained with",
    "workers": "parallel trials on CPU",
    "trials_per_gpu": "parallel trials per GPU",
    "confirm_top": "re-train the K best configurations with --confirm-seeds more seeds, pick by the mean",
    "backend": "local (built-in scheduler and workers) or ray (Ray Tune's ASHA; pip install 'ray[tune]') "
               "(default: local)",
    "model": "checkpoint every trial starts from (default: the newest runs/pretrain-*/final, else albert-base-v2)",
    "preset": "random initialisation of this shape instead of --model",
}


@cli_main
def main() -> int:
    parser = UsageParser.make("tune.py", __doc__)
    # The fine-tuning options (fixed across trials) mean what finetune.py's do, and say so alike.
    add_options(parser, {**FINETUNE_HELP, **HELP})
    summary = run(vars(parser.parse_args()))  # only the options on the command line
    best = summary.get("best") or {}
    if best:
        print(f"best {summary.get('metric', 'metric')} {best.get('metric'):.4g} (trial {best.get('trial_id')}, "
              f"{best.get('resource')} steps); retrain with: "
              f"python train.py {summary.get('sweep_dir', '<sweep>')}/best/config.json")
    if summary.get("stop_reason") == "interrupt":
        print(f"interrupted; continue with: python tune.py --resume {summary.get('sweep_dir')}", file=sys.stderr)
        return 130  # like the other commands: a script sees that the sweep did not finish
    return 0


if __name__ == "__main__":
    main()
