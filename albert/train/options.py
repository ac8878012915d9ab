"""The training options: one dataclass for the command lines (one --option per field), the run
configurations (config.json) and the trainer. Fine-tuning and pretraining runs subclass it with
their own options and defaults."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
from typing import Any

from .. import optional
from ..errors import require
from ..optim import OPTIMIZERS, SCHEDULES
from .budget import parse_duration
from .precision import CHOICES as PRECISION_CHOICES

# Options that change where or how a run is carried out and logged, not what it computes (and
# max_steps: a run may be extended). A resumed run with other values of these still matches an
# uninterrupted one.
NOT_TRAJECTORY = ("output_dir", "log_every", "num_workers", "device", "compile", "compile_mode", "keep_last",
                  "overwrite", "max_steps", "progress", "time_budget", "schedule_ends")
# Left as None on the command line, a recipe fills these in (a task's defaults, ...) before training;
# metric and greater_is_better are needed only where the trainer evaluates.
RESOLVED_BY_RECIPE = ("lr", "batch_size", "warmup", "schedule", "weight_decay", "eval_every")
REPORT_TO = ("none", "tensorboard")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's modes


@dataclasses.dataclass(kw_only=True)
class TrainingOptions:
    output_dir: str = ""
    lr: float | None = None
    batch_size: int | None = None           # rows per micro-batch on each process
    grad_accum: int = 1
    max_steps: int | None = None            # the run's length: max_steps or epochs, never both
    epochs: float | None = None
    time_budget: str | None = None          # "45m", "2h", seconds: fixes max_steps when neither length is given
    warmup: float | None = None             # < 1: a ratio of the steps; >= 1: a number of steps
    schedule: str = "linear"                # linear | polynomial | constant | wsd
    power: float = 1.0                      # of the polynomial schedule
    decay_fraction: float = 0.2             # of the wsd schedule: the last share of the steps, decaying
    schedule_steps: int | None = None       # length of the LR schedule when it is not the run's (tuning rungs
                                            # train part of a run on the full run's schedule)
    schedule_ends: list[list[int]] | None = None  # [[0, steps], [step, steps], ...]: where a time budget
                                            # fixed, then moved, the schedule's end (train/budget.py)
    optimizer: str = "adamw"                # adamw | lamb
    weight_decay: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    max_grad_norm: float = 1.0              # <= 0: no clipping
    layer_lr_decay: float | None = None
    seed: int = 42
    precision: str = "auto"                 # auto: bf16 on CUDA GPUs that support it, else fp32
    device: str = "auto"
    compile: bool = False
    compile_mode: str = "default"           # torch.compile mode; another than default implies compile
    eval_every: int = 0                     # steps; 0: at the end of each epoch (and of training)
    log_every: int = 10
    save_every: int = 0                     # steps; 0: at each evaluation
    keep_last: int = 2
    patience: int | None = None             # evaluations without improvement before stopping
    metric: str | None = None               # the evaluation metric that picks the best model
    greater_is_better: bool | None = None
    num_workers: int | None = None          # None: min(4, CPUs) on CUDA, 0 on CPU
    group_by_length: bool = True
    max_bad_steps: int = 10                 # consecutive non-finite losses before giving up
    auto_accumulate: bool = False           # on GPU out-of-memory: halve the micro-batch, double accumulation, retry
    ddp_find_unused: bool = False           # DDP find_unused_parameters, for models with unused heads
    overwrite: bool = False                 # a fresh run may delete an earlier run's checkpoints in output_dir
    progress: bool = True
    report_to: str = "none"                 # none | tensorboard (besides log.jsonl, which is always written)

    def validate(self) -> None:
        """Checks of the training options (None is allowed where a recipe fills the value in);
        subclasses add their own after calling this. Every number of every field, a subclass's
        included, must be finite: NaN or inf never means anything here (--lr inf used to train
        NaN weights, --max-grad-norm nan to switch clipping off)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            for v in value if isinstance(value, tuple) else (value,):
                require(not isinstance(v, float) or math.isfinite(v),
                        f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
        require(self.lr is None or self.lr > 0, f"--lr must be positive, got {self.lr}")
        require(self.batch_size is None or self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        require(self.grad_accum >= 1, f"--grad-accum must be >= 1, got {self.grad_accum}")
        require(self.max_steps is None or self.max_steps >= 1, f"--max-steps must be >= 1, got {self.max_steps}")
        require(self.epochs is None or self.epochs > 0, f"--epochs must be positive, got {self.epochs}")
        require(self.max_steps is None or self.epochs is None,
                f"give --max-steps or --epochs, not both (got --max-steps {self.max_steps} and --epochs {self.epochs})")
        if self.time_budget is not None:
            parse_duration(self.time_budget)
        require(self.warmup is None or self.warmup >= 0, f"--warmup must be >= 0, got {self.warmup}")
        require(self.schedule is None or self.schedule in SCHEDULES,
                f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        require(0 < self.decay_fraction <= 1, f"--decay-fraction must be in (0, 1], got {self.decay_fraction}")
        require(self.schedule_steps is None or self.schedule_steps >= 1,
                f"--schedule-steps must be >= 1, got {self.schedule_steps}")
        if self.schedule_ends is not None:
            self.check_schedule_ends()
        require(self.optimizer is None or self.optimizer in OPTIMIZERS,
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        require(self.power > 0, f"--power must be positive, got {self.power}")
        require(self.weight_decay is None or self.weight_decay >= 0, "--weight-decay must be >= 0")
        require(all(0 <= b < 1 for b in self.betas), f"--betas must both be in [0, 1), got {list(self.betas)}")
        require(self.eps > 0, f"--eps must be positive, got {self.eps}")
        require(self.layer_lr_decay is None or 0 < self.layer_lr_decay <= 1,
                f"--layer-lr-decay must be in (0, 1], got {self.layer_lr_decay}")
        require(0 <= self.seed < 2**32, f"--seed must be in [0, 2^32), got {self.seed}")
        require(self.precision in PRECISION_CHOICES,
                f"--precision must be one of {', '.join(PRECISION_CHOICES)}, got {self.precision!r}")
        require(self.log_every >= 1, f"--log-every must be >= 1, got {self.log_every}")
        require((self.eval_every is None or self.eval_every >= 0) and self.save_every >= 0,
                "--eval-every and --save-every must be >= 0")
        require(self.keep_last >= 1, f"--keep-last must be >= 1, got {self.keep_last}")
        require(self.patience is None or self.patience >= 1, f"--patience must be >= 1, got {self.patience}")
        require(self.num_workers is None or self.num_workers >= 0,
                f"--num-workers must be >= 0, got {self.num_workers}")
        require(self.compile_mode in COMPILE_MODES,
                f"--compile-mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        require(self.max_bad_steps >= 1, f"--max-bad-steps must be >= 1, got {self.max_bad_steps}")
        require(self.report_to in REPORT_TO, f"--report-to must be one of {', '.join(REPORT_TO)}, got {self.report_to!r}")
        if self.report_to == "tensorboard":
            require(importlib.util.find_spec("tensorboard") is not None,
                    "--report-to tensorboard needs the tensorboard package: "
                    f"{optional.INSTALL['torch.utils.tensorboard']}")

    def validate_resolved(self, evaluating: bool = True) -> None:
        """What the trainer needs beyond `validate`: every recipe default filled in (and, when it
        evaluates, the metric that picks the best model)."""
        self.validate()
        require(bool(self.output_dir), "--output-dir is required")
        needed = RESOLVED_BY_RECIPE + (("metric", "greater_is_better") if evaluating else ())
        missing = [name for name in needed if getattr(self, name) is None]
        require(not missing, f"training options not set: {', '.join(missing)}")
        require(self.max_steps is not None or self.epochs is not None, "give max_steps or epochs")

    def check_schedule_ends(self) -> None:
        ends = self.schedule_ends
        shape = (isinstance(ends, list) and ends and all(isinstance(e, (list, tuple)) and len(e) == 2
                 and all(isinstance(v, int) and not isinstance(v, bool) for v in e) for e in ends))
        require(bool(shape) and ends[0][0] == 0 and all(step < total for step, total in ends)
                and all(a[0] < b[0] for a, b in zip(ends, ends[1:])),
                f"--schedule-ends must be [[0, steps], [step, steps], ...] with increasing steps, each before its "
                f"end, got {ends}")
        require(self.max_steps == ends[-1][1],
                f"--schedule-ends ends at {ends[-1][1]} steps but --max-steps is {self.max_steps}")
        require(self.schedule_steps is None and self.epochs is None,
                "--schedule-ends goes with --max-steps, not with --schedule-steps or --epochs")

    def trajectory_settings(self) -> dict[str, Any]:
        """The training options that shape the trajectory (not where or how it is logged); a
        subclass's own options are not among them."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainingOptions)
             if f.name not in NOT_TRAJECTORY}
        if self.schedule != "wsd":  # it shapes nothing else, and runs saved before it existed still resume
            del d["decay_fraction"]
        return json.loads(json.dumps(d, sort_keys=True, default=str))

    def fingerprint(self) -> str:
        """Hash of `trajectory_settings()`."""
        return hashlib.sha256(json.dumps(self.trajectory_settings(), sort_keys=True).encode()).hexdigest()[:16]


# The command-line help of every training option (the recipes add their own and may override);
# runconfig.add_arguments appends each option's default and allowed values.
HELP = {
    "output_dir": "the run directory: config.json, log.jsonl, results.json, checkpoints/, best/ "
                  "(default: a new runs/<kind>-<date>-<time>)",
    "lr": "peak learning rate (default: by the recipe; see below)",
    "batch_size": "rows per micro-batch on each process; the global batch is batch_size x grad_accum x processes",
    "grad_accum": "micro-batches accumulated into one optimizer step",
    "max_steps": "optimizer steps to train; overrides --epochs",
    "epochs": "passes over the training data (used when --max-steps is not given)",
    "time_budget": "train to a wall-clock budget: 45m, 2h, 90s or seconds. The run measures its step rate on a "
                   "few probe steps, then fixes --max-steps so that the whole run (start-up, evaluations and "
                   "saves included) ends within it; config.json records the steps (default: none; not with --max-steps or --epochs)",
    "warmup": "linear warmup: a fraction of the steps if < 1 (0.1: the first 10%%), else a number of steps "
              "(capped at the run's length, with a warning)",
    "schedule": "learning-rate decay after warmup (wsd: warmup-stable-decay, the peak held until the last "
                "--decay-fraction of the steps, then a linear decay)",
    "power": "exponent of the polynomial schedule (1: linear)",
    "decay_fraction": "the share of the steps the wsd schedule decays over, at the end of the run",
    "schedule_ends": "where a time budget fixed and then moved the end of the learning-rate schedule, as "
                     "[[0, steps], [step, steps], ...] (a budgeted run writes it to config.json, so that train.py "
                     "repeats its lrs; default: none, the schedule ends at the run's last step)",
    "schedule_steps": "length of the learning-rate schedule when it differs from the run's "
                      "(default: the run's steps; the tuner's rungs train part of a longer schedule)",
    "optimizer": "adamw (fine-tuning) or lamb (ALBERT's pretraining optimizer)",
    "weight_decay": "decoupled weight decay, skipping biases and LayerNorm weights",
    "betas": "the optimizer's (beta1, beta2), as JSON: [0.9, 0.999]",
    "eps": "the optimizer's epsilon",
    "max_grad_norm": "clip the gradient's global norm to this; 0 or less: no clipping",
    "layer_lr_decay": "layer-wise learning-rate decay in (0, 1]: each layer down from the top gets this factor "
                      "more (default: off)",
    "seed": "random seed of the run (initialisation, data order, dropout, masking)",
    "precision": "auto: bf16 on CUDA GPUs that support it, else fp32",
    "device": "auto (the GPU when there is one, else cpu), cpu, cuda or cuda:N",
    "compile": "torch.compile the model",
    "compile_mode": "torch.compile's mode (implies --compile unless default): reduce-overhead adds CUDA graphs "
                    "(pretraining batches have static shapes), max-autotune also tunes kernels (long compile)",
    "eval_every": "evaluate every N steps; 0: at the end of each epoch and of training",
    "log_every": "write a line to log.jsonl every N steps",
    "save_every": "checkpoint every N steps; 0: at each evaluation",
    "keep_last": "checkpoints kept (older ones are deleted)",
    "patience": "stop after this many evaluations without improvement (default: never stop early)",
    "metric": "the evaluation metric that picks best/",
    "greater_is_better": "whether a larger --metric is better",
    "num_workers": "DataLoader worker processes, kept across epochs (default: min(4, CPUs per process) on CUDA, "
                   "0 on CPU); 0: load batches in the training process",
    "group_by_length": "batch rows of similar length together (less padding)",
    "max_bad_steps": "consecutive steps with a non-finite loss (skipped) before the run stops",
    "auto_accumulate": "on GPU out-of-memory: halve the micro-batch and double --grad-accum, then retry",
    "ddp_find_unused": "DistributedDataParallel find_unused_parameters (models with unused heads)",
    "overwrite": "a fresh run may delete an earlier run's checkpoints in --output-dir",
    "progress": "progress bars (and datasets' bars)",
    "report_to": "also log the scalars of log.jsonl to TensorBoard (output_dir/tensorboard; "
                 "pip install -e '.[tensorboard]')",
}
# Options whose values are a fixed list: the command lines offer exactly these.
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISION_CHOICES, "report_to": REPORT_TO,
           "compile_mode": COMPILE_MODES}
