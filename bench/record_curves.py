"""Record validation curves of random fine-tuning configurations of a tiny ALBERT, for bench_replay.py.

    python bench/record_curves.py --task ner --workers 2 --out bench/results/curves-ner.json
    python bench/record_curves.py --task sst2 --workers 2 --out bench/results/curves-sst2.json
    python bench/record_curves.py --task pos --workers 2 --out bench/results/curves-pos.json
    python bench/record_curves.py --task ner --workers 2 --model runs/pretrain-<time>/final \
        --out bench/results/curves-ner-pretrained.json
    python bench/record_curves.py --task stsb --workers 2 --model runs/pretrain-<time>/final \
        --out bench/results/curves-stsb.json

Each configuration is drawn from REPLAY_SPACE with `Space.sample(seed, index)` (the tuner's
random draw), fine-tuned from a random `--preset tiny` initialisation (or, with --model, from a
pretrained checkpoint and its vocabulary: a GLUE pair task barely leaves chance from random
weights in a few hundred steps, so every configuration would score alike) through the tuner's own
objective mapping (albert.tune.sweep.objective.finetune_args), with the LR schedule of the task's
steps (TASKS), and evaluated every so many steps on a part or all of the validation split: a
curve is [step, main metric, validation loss] rows.
One JSON line per finished configuration goes to `<out>.jsonl` as it finishes (a killed recording
continues where it stopped); at the end the lines are gathered into `<out>`, the table replay
reads. Each worker process trains one configuration at a time on one CPU thread. Configuration
i is the same draw and the same training whatever --configs says, so a larger --configs extends a
table: start from its lines file and only the new indices are trained.

Run it niced in the background; a CoNLL-2003 configuration takes 10-50 s, an SST-2 one 30-90 s.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import multiprocessing
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albert.atomic import write_json  # noqa: E402
from albert.tune.search.space import Choice, LogUniform, Space, Uniform  # noqa: E402



class Recording(NamedTuple):
    max_steps: int  # steps per configuration (its LR schedule's length)
    eval_every: int
    eval_samples: int | None  # validation examples scored (a fixed subsample); None: all
    max_seq_length: int


# SST-2 runs longer: in a 200-step table (500 dev sentences, recorded 2026-11-27) nearly every
# configuration still answered the majority class at 50 steps (rank correlation of the 50-step
# metric with the final one 0.15, CoNLL-2003's 0.52) and the ten best final accuracies lay within
# 4.6 points, 2.4 standard errors. A subsample (seed 0, the same for every configuration) keeps a
# recording short on a shared CPU: 500 of CoNLL-2003's 3,250 validation sentences; SST-2's 872 are
# all used, since one standard error on 500 was 1.9 points of accuracy.
TASKS = {
    "ner": Recording(200, 25, 500, 128),
    "pos": Recording(200, 25, 500, 128),
    "chunk": Recording(200, 25, 500, 128),
    "sst2": Recording(600, 50, None, 64),
    "mrpc": Recording(200, 25, None, 128),
    "stsb": Recording(200, 25, None, 128),
    "cola": Recording(200, 25, None, 64),
    "rte": Recording(200, 25, None, 128),
}

# The tuner's fine-tuning space for a --preset run, with a learning-rate range for a random
# initialisation (it trains well far above a pretrained model's 1e-5..1e-4; below ~2e-4 a tiny
# model learns next to nothing in 200 steps).
REPLAY_SPACE = Space({
    "lr": LogUniform(3e-5, 1e-2),
    "batch_size": Choice([16, 32, 64]),
    "warmup": Uniform(0.0, 0.3),
    "weight_decay": Choice([0.0, 0.01, 0.1]),
    "dropout": Uniform(0.0, 0.3),
    "hidden_dropout": Uniform(0.0, 0.3),
    "attention_dropout": Uniform(0.0, 0.3),
    "layer_lr_decay": Uniform(0.7, 1.0),
})


def record_one(task: str, index: int, master_seed: int, work: Path, model: str | None = None,
               seed: int | None = None) -> dict:
    """Fine-tune configuration `index` of the draw and return its row; `seed`: another training
    seed for the same configuration (default: the tuner's trial seed, the table's)."""
    import torch

    from albert.finetune import run
    from albert.tasks import get_task
    from albert.tune.sweep.objective import finetune_args
    from albert.tune.sweep.run import trial_seed

    code = code_version()  # the code this worker imported just now (cached: one git call per worker)
    config = REPLAY_SPACE.sample(master_seed, index)
    seed = trial_seed(master_seed, index) if seed is None else seed
    trial_dir = work / f"{task}-{index:04d}-{seed}"
    steps = TASKS[task].max_steps
    start = {"model": model} if model else {"preset": "tiny"}
    args = finetune_args({"task": task, **start, **config}, str(trial_dir), steps, steps, seed)
    args = dataclasses.replace(args, eval_every=TASKS[task].eval_every, max_seq_length=TASKS[task].max_seq_length,
                               max_eval_samples=TASKS[task].eval_samples, save_every=0)
    metric_name = get_task(task).main_metric
    curve: list[list[float]] = []

    def report(step: int, metrics: dict[str, float]) -> bool:
        curve.append([int(step), float(metrics[metric_name]), float(metrics["loss"])])
        return True

    torch.set_num_threads(1)
    started = time.process_time()
    run(args, report=report)
    shutil.rmtree(trial_dir, ignore_errors=True)
    return {"index": index, "seed": seed, "config": config, "curve": curve,
            "cpu_s": round(time.process_time() - started, 2), "code": code}


@functools.cache
def code_version() -> str:
    """The commit the recording runs (`-dirty` with uncommitted changes). Kept per row: a
    recording continued after a code change would otherwise mix two trainings in one table (the
    CoNLL-2003 table before 2026-11-28 did: 31 of its 150 rows, all among the first 48, recorded
    by an older commit, no longer reproduced). Asked once per process, when it first imports
    albert: a worker trains with the code it imported then, whatever the checkout holds later."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_star(job: tuple) -> dict:
    return record_one(*job)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, choices=sorted(TASKS), help="the task whose curves to record")
    ap.add_argument("--configs", type=int, default=150, help="how many configurations (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="master seed of the configuration draws (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=1,
                    help="processes recording at once, one CPU thread each (default: %(default)s)")
    ap.add_argument("--model", help="start every configuration from this pretrained checkpoint directory "
                                    "(its vocabulary too) instead of a random --preset tiny initialisation")
    ap.add_argument("--out", required=True, help="the table to write; <out>l collects the finished lines")
    args = ap.parse_args()
    recording = TASKS[args.task]
    out = Path(args.out)
    lines = out.with_suffix(out.suffix + "l")
    earlier = [json.loads(x) for x in lines.read_text().splitlines()] if lines.exists() else []
    # What every configuration starts from, kept with each row: a recording continued with
    # another --model would otherwise mix two starting points in one table.
    start = ({"model": args.model, "model_sha256": sha256_of(Path(args.model) / "model.safetensors")}
             if args.model else {"preset": "tiny"})
    other = {json.dumps(r.get("start", {"preset": "tiny"}), sort_keys=True) for r in earlier}
    other.discard(json.dumps(start, sort_keys=True))
    if other:
        sys.exit(f"{lines}: its rows started from {'; '.join(sorted(other))}, not {json.dumps(start)}; "
                 "continue with the same start, or record to a new --out")
    done = {r["index"] for r in earlier}
    todo = [i for i in range(args.configs) if i not in done]
    work = Path(tempfile.mkdtemp(prefix="albert-curves-"))
    # The parent alone appends to the lines file, in the order configurations finish.
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        try:
            model = str(Path(args.model).resolve()) if args.model else None
            jobs = [(args.task, index, args.seed, work, model) for index in todo]
            for row in pool.imap_unordered(_record_star, jobs):
                with open(lines, "a", encoding="utf-8") as f:
                    f.write(json.dumps({**row, "start": start}) + "\n")
                print(f"{args.task} {row['index']}: {row['curve'][-1][1]:.4f} after {recording.max_steps} steps, "
                      f"{row['cpu_s']:.0f} s CPU", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    rows = sorted((json.loads(x) for x in lines.read_text().splitlines()), key=lambda r: r["index"])
    codes = sorted({r.get("code", "unknown") for r in rows})
    if len(codes) > 1:
        sys.exit(f"{lines}: rows recorded by {len(codes)} code versions ({', '.join(codes)}); "
                 "record the table again from one")
    write_json(out, {
        "task": args.task, **start, "master_seed": args.seed, "max_steps": recording.max_steps,
        "eval_every": recording.eval_every, "max_seq_length": recording.max_seq_length,
        "eval_samples": recording.eval_samples,
        "space": REPLAY_SPACE.to_json(), "torch_threads": 1, "python": platform.python_version(),
        "recorded": time.strftime("%Y-%m-%d"), "code": codes[0], "configs": rows})


if __name__ == "__main__":
    main()
