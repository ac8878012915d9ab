"""How far apart two configurations of a recorded curve table really are: each is trained again
with its table seed and with other seeds, so a gap between them in the table can be set against
the spread one configuration shows from seed to seed.

    python bench/curve_noise.py bench/results/curves-ner.json:87,137 \
        bench/results/curves-ner-pretrained.json:34,25 bench/results/curves-chunk.json:114,87 \
        bench/results/curves-pos.json:25,34 --seeds 3 --workers 2 --out bench/results/curve-noise.json

Seed 0 is the table's own training seed (its rerun checks that the code still reproduces the
table); seeds 1..N are new. A table started from a pretrained model (`model` in the table) is
trained from that model again; its sha256 must still match. One CPU thread per training, as in
record_curves.py.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from albert.atomic import write_json  # noqa: E402
from record_curves import code_version, record_one, sha256_of  # noqa: E402

SEED_STRIDE = 1_000_003  # seed k of a configuration: its table seed + k * SEED_STRIDE


def parse_target(text: str) -> tuple[Path, list[int]]:
    """'TABLE.json:I,J' -> (path, [I, J])."""
    path, _, indices = text.rpartition(":")
    if not path or not indices:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TABLE.json:INDEX,INDEX")
    try:
        pair = [int(i) for i in indices.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the indices must be integers") from None
    if len(pair) != 2:  # the output compares two configurations
        raise argparse.ArgumentTypeError(f"{text!r}: expected TABLE.json:INDEX,INDEX (two configurations)")
    return Path(path), pair


def load_table(path: Path) -> dict:
    """The table, its pretrained start checked against the sha256 it was recorded from."""
    table = json.loads(path.read_text())
    if "model" in table:
        weights = Path(table["model"]) / "model.safetensors"
        if not weights.exists():
            sys.exit(f"{path}: its start {table['model']} is not on this machine")
        if sha256_of(weights) != table["model_sha256"]:
            sys.exit(f"{path}: {weights} is not the model the table was recorded from (sha256 differs)")
    return table


def _train(job: tuple) -> tuple:
    name, task, index, master_seed, work, model, seed, k = job
    row = record_one(task, index, master_seed, work, model, seed=seed)
    return name, index, k, row["curve"][-1][1]


def summarise(finals: dict[int, float], table_final: float) -> dict:
    """Per configuration: the table's final metric, the rerun of its seed, and the spread over seeds."""
    values = [finals[k] for k in sorted(finals)]
    return {"table": table_final, "seed0_rerun": finals[0], "finals": values,
            "mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="+", type=parse_target, help="TABLE.json:INDEX,INDEX (configurations to retrain)")
    ap.add_argument("--seeds", type=int, default=3, help="new training seeds per configuration (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=1, help="trainings at once, one thread each (default: %(default)s)")
    ap.add_argument("--out", required=True, help="where to write the figures (JSON)")
    args = ap.parse_args()

    tables = {str(path): (load_table(path), indices) for path, indices in args.targets}
    rows = {name: {r["index"]: r for r in table["configs"]} for name, (table, _) in tables.items()}
    work = Path(tempfile.mkdtemp(prefix="albert-noise-"))
    jobs = []
    for name, (table, indices) in tables.items():
        for index in indices:
            for k in range(args.seeds + 1):
                jobs.append((name, table["task"], index, table["master_seed"], work, table.get("model"),
                             rows[name][index]["seed"] + k * SEED_STRIDE, k))
    finals: dict[tuple[str, int], dict[int, float]] = {}
    try:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            for name, index, k, final in pool.imap_unordered(_train, jobs):
                finals.setdefault((name, index), {})[k] = final
                print(f"{name} {index} seed {k}: {final:.4f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    out = {}
    for name, (_, indices) in tables.items():
        configs = {i: summarise(finals[name, i], rows[name][i]["curve"][-1][1]) for i in indices}
        a, b = (configs[i] for i in indices)
        gap = a["mean"] - b["mean"]
        se = (a["sd"] ** 2 / len(a["finals"]) + b["sd"] ** 2 / len(b["finals"])) ** 0.5
        out[name] = {"configs": configs, "table_gap": a["table"] - b["table"], "mean_gap": gap, "gap_se": se}
        print(f"{name}: table {a['table']:.4f} vs {b['table']:.4f}; over {args.seeds + 1} seeds "
              f"{a['mean']:.4f} +- {a['sd']:.4f} vs {b['mean']:.4f} +- {b['sd']:.4f} (gap {gap:+.4f}, se {se:.4f})")
    write_json(Path(args.out), {"seeds": args.seeds + 1, "torch_threads": 1, "recorded": time.strftime("%Y-%m-%d"),
                                "code": code_version(), "tables": out})


if __name__ == "__main__":
    main()
