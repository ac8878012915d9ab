"""Multi-fidelity search on real learning curves: replay recorded fine-tuning runs.

    python bench/bench_replay.py                       # both tables in bench/results/, 10 seeds
    python bench/bench_replay.py --tables bench/results/curves-sst2.json --seeds 3

The tables (written by bench/record_curves.py) hold, for 150 random configurations of a tiny
ALBERT per task, the validation metric and loss every few steps up to the table's length
(CoNLL-2003: every 25 steps up to 200; SST-2: every 50 up to 600). A replayed trial trains no
model: its metric and loss at r steps are the recorded ones. Each method runs the tuner's own scheduler
(albert.tune.asha) and sampler (albert.tune.search.sampler) in a sequential sweep loop:

  random      random search, every trial to the full length
  asha        random configurations, ASHA (eta 2: rungs at a quarter, a half and all of the
              length, e.g. 50, 100, 200), promotions
  gp          the GP sampler, every trial to the full length
  gp+asha     the GP sampler proposing, ASHA scheduling, the model fitted on the rungs
  oracle      GP+ASHA whose model is told, at every rung, each tried configuration's final
              metric and loss (what no sampler can know under ASHA): what a perfect model of
              where the rungs lead would buy with the trials GP+ASHA gets

Every method draws from the same pool, each configuration at most once (--protocol pool, the
default, the usual protocol on tabular benchmarks): a random configuration is a uniform draw
from the recorded ones not tried yet, and the GP sampler maximises its acquisition over those
(its model, believer and penalties unchanged; PoolMaximiser takes the place of its maximiser).
Every metric a method sees is then one that was measured. The older protocol (--protocol
snap-model or snap-euclidean) snaps each proposal to the nearest untried configuration (in the
GP's length scales, or plainly); in 8 dimensions that neighbour is far from the proposal (1-1.6
length scales in a CoNLL-2003 trace), so which configuration a method gets depends on the pool
as much as on the method: with it, GP+ASHA beat ASHA on 9 of 10 seeds on the first 100
CoNLL-2003 configurations and on 1 to 5 of 10 on four random 100-configuration subsets of the
150. The result of a method is the final metric of the best trial it trained to the full length.

Printed: per task, the median over seeds of that result for each method at equal resource
(10 and 30 full trainings), then the two acceptance checks: (1) GP+ASHA with a third of random
search's resource gets within 0.3 points of random search's best with 30 full trainings (per
seed and in the median); (2) GP+ASHA beats ASHA at the same resource on how many seeds, with a
two-sided sign test over the seeds not level (p: how often coin flips would split as unevenly).
Then two limits on the second check: on how many seeds ASHA already ends with the pool's best
configuration, or one of its three best (there GP+ASHA can at best draw level), and how the
oracle fares against ASHA.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from albert.atomic import write_json  # noqa: E402
from albert.tune.asha import make_scheduler  # noqa: E402
from albert.tune.search.gp import input_scale  # noqa: E402
from albert.tune.search.sampler import build_history  # noqa: E402
from albert.tune.sweep.settings import make_sampler  # noqa: E402
from albert.tune.search.space import Space, current_names  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("random", "asha", "gp", "gp+asha")
# Leave-one-task-out (--transfer): the other tables warm-start GP+ASHA (the prior mean and their
# best configurations first), or only enqueue their best configurations before random+ASHA
# (what users do by hand), against cold GP+ASHA and random+ASHA.
TRANSFER = ("warm-gp+asha", "top+asha")
ORACLE = "oracle"


class Table:
    """The recorded curves, and the pool a replayed sweep draws configurations from."""

    def __init__(self, path: Path) -> None:
        data = json.loads(path.read_text())
        self.task, self.max_steps = data["task"], data["max_steps"]
        # Tables of one task from two starting points (random weights, a pretrained model) are told
        # apart by their file names: curves-ner.json is "ner", curves-ner-pretrained.json "ner-pretrained".
        self.name = path.stem.removeprefix("curves-")
        self.space = Space.from_dict(data["space"])
        self.configs = [current_names(row["config"]) for row in data["configs"]]  # tables keep their names
        self.curves = [{int(s): float(m) for s, m, *_ in row["curve"]} for row in data["configs"]]
        # The validation loss at each evaluation, in tables recorded with it (NaN otherwise).
        self.losses = [{int(s): float(rest[0]) if rest else math.nan for s, _, *rest in row["curve"]}
                       for row in data["configs"]]
        # The GP's own input scaling: two different options of a choice 1 apart, as two ends of a range are.
        self.scale = input_scale(self.space)
        self.encoded = np.array([self.space.encode(c) for c in self.configs])  # the unit cube
        self.points = self.encoded * self.scale

    def row(self, config: dict[str, Any]) -> int:
        """The row of a recorded configuration (-1: none)."""
        return next((i for i, c in enumerate(self.configs) if c == config), -1)

    def as_source(self) -> Any:
        """This table as a --warm-start source for another task: every configuration's final
        metric, as a finished random-search sweep of it would have recorded."""
        from albert.tune.search.sampler import History, Observation
        from albert.tune.sweep.warmstart import Source

        finals = [(self.final(i), i) for i in range(len(self.configs))]
        history = History(tuple(Observation(i + 1, self.configs[i], self.max_steps, m) for m, i in finals), (), "max",
                          self.max_steps, self.max_steps, (self.max_steps,))
        ranked = [self.configs[i] for _, i in sorted(finals, key=lambda f: (-f[0], f[1]))]
        return Source(self.name, "", self.task, "prior", tuple(self.space), history, ranked)

    def final(self, i: int) -> float:
        return self.curves[i][self.max_steps]

    def nearest_unused(self, config: dict[str, Any], used: set[int], length_scales: list[float] | None = None) -> int:
        """The recorded configuration closest to `config`; in the model's own metric (each
        coordinate divided by its fitted length scale) when the sampler gives one."""
        lengths = np.asarray(length_scales, dtype=float) if length_scales else 1.0
        distance = np.linalg.norm((self.points - self.space.encode(config) * self.scale) / lengths, axis=1)
        distance[list(used)] = np.inf
        return int(np.argmin(distance))

    def unused(self, used: set[int]) -> np.ndarray:
        """The rows not tried yet, in table order."""
        return np.array([i for i in range(len(self.configs)) if i not in used], dtype=int)

    def uniform_unused(self, used: set[int], seed: int, index: int) -> int:
        """A recorded configuration not tried yet, drawn uniformly (seeded by seed and trial index):
        random search over the pool, exactly."""
        free = self.unused(used)
        return int(free[np.random.default_rng([seed, index, 0x9001]).integers(len(free))])


class PoolMaximiser:
    """Stands in for the GP sampler's acquisition maximiser (`GPSampler.maximiser`) under
    --protocol pool: the acquisition is scored on the recorded configurations not tried yet and the
    best of them is the proposal (`row`), the usual protocol on tabular benchmarks. The sampler's
    model, believer and penalties are its own; only the set searched over is the pool."""

    def __init__(self, table: Table, used: set[int]) -> None:
        self.table, self.used = table, used
        self.row = -1

    def maximise(self, score: Any, rng: np.random.Generator, incumbent: np.ndarray) -> tuple[np.ndarray, float]:
        free = self.table.unused(self.used)
        values = score(self.table.encoded[free])
        best = int(np.argmax(values))
        self.row = int(free[best])
        return self.table.encoded[self.row], float(values[best])


def replay(table: Table, method: str, seed: int, resource_budget: int, eta: int = 2, min_resource: int = 50,
           protocol: str = "pool", warm: Any = None) -> dict:
    """One sequential sweep of `method` until `resource_budget` steps are spent (a job that would
    overrun it is not started); the best final metric and what it cost. `warm` (a WarmStart)
    for the transfer methods: warm-gp+asha and top+asha."""
    told_final = method == ORACLE
    scheduled = method.endswith("asha") or told_final
    modelled = method.startswith(("gp", "warm-gp")) or told_final
    scheduler = make_scheduler("asha" if scheduled else "random", min_resource if scheduled else table.max_steps,
                               table.max_steps, eta, "max")
    sampler = make_sampler("gp" if modelled else "random", table.space, master_seed=seed)
    sampler.warm = warm if method in TRANSFER else None
    rungs = scheduler.rungs
    row_of: dict[int, int] = {}          # trial id -> table row
    used: set[int] = set()
    if protocol == "pool" and modelled:
        sampler.maximiser = PoolMaximiser(table, used)
    results: list[tuple[int, int, float, float]] = []
    spent, cpu = 0, 0.0
    while True:
        allow_new = len(row_of) < len(table.configs)
        job = scheduler.suggest(allow_new)
        if job is None or spent + job.to_resource - job.from_resource > resource_budget:
            break
        if job.kind == "new":
            tid = len(row_of)
            seen = results
            if told_final:  # every result the model sees is the trial's final metric and loss
                final = table.max_steps
                seen = [(t, r, table.curves[row_of[t]][final], table.losses[row_of[t]][final])
                        for t, r, _, _ in results]
            history = build_history(table.space, {t: table.configs[r] for t, r in row_of.items()}, seen, [],
                                    rungs, "max")
            t0 = time.process_time()
            proposal = sampler.propose(tid, history)
            cpu += time.process_time() - t0
            if protocol != "pool":
                lengths = proposal.info.get("length_scales") if protocol == "snap-model" else None
                row_of[tid] = table.nearest_unused(proposal.config, used, lengths)
            elif proposal.info.get("how") == "model":
                row_of[tid] = sampler.maximiser.row
            elif proposal.info.get("how") == "warm-start" and table.row(proposal.config) not in used:
                row_of[tid] = table.row(proposal.config)  # the tables share their configurations
            else:  # random search, and the GP's initial design: a uniform draw from the pool
                row_of[tid] = table.uniform_unused(used, seed, tid)
            assert row_of[tid] not in used, "a recorded configuration is replayed once per sweep"
            used.add(row_of[tid])
            job = job._replace(trial_id=tid)
        spent += job.to_resource - job.from_resource
        metric = table.curves[row_of[job.trial_id]][job.to_resource]
        results.append((job.trial_id, job.to_resource, metric, table.losses[row_of[job.trial_id]][job.to_resource]))
        scheduler.report(job.trial_id, job.to_resource, metric)
    finals = [m for _, r, m, _ in results if r == table.max_steps]
    return {"best": max(finals) if finals else math.nan, "spent": spent, "trials": len(row_of),
            "completed": len(finals), "cpu_s": round(cpu, 2)}


def ahead_of_asha(runs: dict[str, dict[int, list[dict]]], n: int, method: str = "gp+asha") -> tuple[int, int]:
    """Seeds on which `method`'s best beats ASHA's at `n` full trainings, and seeds level."""
    pairs = list(zip(runs[method][n], runs["asha"][n]))
    return sum(o["best"] > a["best"] for o, a in pairs), sum(o["best"] == a["best"] for o, a in pairs)


def sign_test(ahead: int, behind: int) -> float:
    """Two-sided sign test of "GP+ASHA and ASHA are as likely to be ahead on a seed" (seeds level
    left out): the probability of a split at least this uneven if each seed were a coin flip."""
    from scipy.stats import binomtest

    return float(binomtest(ahead, ahead + behind, 0.5).pvalue) if ahead + behind else 1.0


def transfer(paths: list[str], seeds: int, budgets: list[int], eta: int, out: str, workers: int = 1) -> None:
    """--transfer: each table in turn the target, the others its warm-start sources; the targets
    are replayed `workers` at a time (one process each), and the figures do not depend on it."""
    tables = [Table(Path(p)) for p in paths]
    record: dict[str, Any] = {"bench": "replay-transfer", "seeds": seeds, "tables": [t.name for t in tables],
                              "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "targets": {}}
    jobs = [(tables, k, seeds, budgets, eta) for k in range(len(tables))]
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            results = pool.starmap(transfer_target, jobs)
    else:
        results = [transfer_target(*job) for job in jobs]
    for name, rows, text in results:
        print(text, flush=True)
        record["targets"][name] = rows
    write_json(out, record)
    print(f"-> {out}")


def transfer_target(tables: list[Table], k: int, seeds: int, budgets: list[int],
                    eta: int) -> tuple[str, dict, str]:
    """Table k as the target of the leave-one-task-out replay: (its name, its figures, the lines
    that report them)."""
    from albert.tune.sweep.warmstart import WarmStart

    target = tables[k]
    methods = ("asha", "gp+asha", *TRANSFER)
    warm = WarmStart([t.as_source() for t in tables if t is not target], target.space)
    runs = {m: {n: [replay(target, m, seed, n * target.max_steps, eta, target.max_steps // 4, "pool", warm)
                    for seed in range(seeds)] for n in budgets} for m in methods}
    medians = {m: {n: statistics.median(r["best"] for r in runs[m][n]) for n in budgets} for m in methods}
    rows: dict[str, Any] = {"medians": medians, "best": {m: {n: [r["best"] for r in runs[m][n]] for n in budgets}
                                                         for m in methods}}
    lines = [f"{target.name} (sources: {', '.join(t.name for t in tables if t is not target)}), pool best "
             f"{max(target.final(i) for i in range(len(target.configs))):.4f}"]
    for n in budgets:
        lines.append(f"  {n:3d} full trainings, median best final metric: "
                     + "  ".join(f"{m} {medians[m][n]:.4f}" for m in methods))
    for rival in ("gp+asha", "top+asha", "asha"):
        splits = {}
        for n in budgets:
            pairs = list(zip(rows["best"]["warm-gp+asha"][n], rows["best"][rival][n]))
            ahead, behind = sum(a > b for a, b in pairs), sum(a < b for a, b in pairs)
            splits[n] = {"ahead": ahead, "behind": behind, "sign_test_p": sign_test(ahead, behind)}
        rows[f"warm_vs_{rival}"] = splits
        lines.append(f"  warm-gp+asha vs {rival}: " + ", ".join(
            f"{v['ahead']}-{v['behind']} (p {v['sign_test_p']:.2g}) at {n}" for n, v in splits.items()))
    # The resource warm start needs to reach cold GP+ASHA's median best at the middle budget.
    goal_n = budgets[len(budgets) // 2]
    goal = medians["gp+asha"][goal_n]
    reach = [n for n in budgets if medians["warm-gp+asha"][n] >= goal]
    rows["reach_cold_median_at"] = {"cold_budget": goal_n, "goal": goal, "warm_budget": reach[0] if reach else None}
    lines.append(f"  cold gp+asha's median at {goal_n} ({goal:.4f}) reached by warm-gp+asha at "
                 f"{reach[0] if reach else 'none'} of {budgets} full trainings")
    entry = {m: {str(n): v for n, v in r.items()} for m, r in rows["best"].items()} | {
        key: v for key, v in rows.items() if key != "best"}
    return target.name, entry, "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="*", default=[str(p) for p in sorted(RESULTS.glob("curves-*.json"))],
                    help="curve tables to replay (default: bench/results/curves-*.json)")
    ap.add_argument("--seeds", type=int, default=10, help="replays per method (default: %(default)s)")
    ap.add_argument("--full-trainings", type=int, nargs="*", default=[10, 30],
                    help="resource budgets, in full-length trainings (default: 10 30)")
    # After an eighth of the length a random initialisation has learned next to nothing (CoNLL-2003,
    # 25 of 200 steps: rank correlation with the final metric about 0); from a quarter on the
    # early ranks carry information.
    ap.add_argument("--min-resource", type=int, default=None,
                    help="ASHA's first rung in steps (default: a quarter of each table's length)")
    ap.add_argument("--eta", type=int, default=2, help="ASHA's reduction factor (default: %(default)s)")
    ap.add_argument("--protocol", choices=("pool", "snap-model", "snap-euclidean"), default="pool",
                    help="how a proposal becomes a recorded configuration: pool (random draws from the untried ones, "
                         "the GP's acquisition maximised over them), or the nearest untried one to the proposal in "
                         "the GP's length scales (snap-model) or plainly (snap-euclidean) (default: %(default)s)")
    ap.add_argument("--out", default=None, help="where the figures go (default: bench/results/replay.json, "
                                                "replay-transfer.json with --transfer)")
    ap.add_argument("--transfer", action="store_true",
                    help="leave-one-task-out: each table warm-started from the others "
                         "(--full-trainings default 5 10 20)")
    ap.add_argument("--workers", type=int, default=1,
                    help="with --transfer: targets replayed at once, one process each (default: %(default)s)")
    args = ap.parse_args()
    if args.transfer:
        budgets = args.full_trainings if args.full_trainings != [10, 30] else [5, 10, 20]
        return transfer(args.tables, args.seeds, budgets, args.eta, args.out or "bench/results/replay-transfer.json",
                        args.workers)
    args.out = args.out or "bench/results/replay.json"
    record: dict[str, Any] = {"bench": "replay", "seeds": args.seeds, "protocol": args.protocol,
                              "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "tasks": {}}
    for path in args.tables:
        table = Table(Path(path))
        finals = [table.final(i) for i in range(len(table.configs))]
        pool_best = max(finals)
        print(f"{table.name}: {len(table.configs)} recorded configurations, best final metric {pool_best:.4f}",
              flush=True)
        from scipy.stats import spearmanr

        early = {r: float(spearmanr([c[r] for c in table.curves], finals)[0]) for r in sorted(table.curves[0])
                 if r < table.max_steps}
        print("  rank correlation of the metric at r steps with the final one: "
              + "  ".join(f"{r}: {v:.2f}" for r, v in early.items()), flush=True)
        runs: dict[str, dict[int, list[dict]]] = {}
        for method in (*METHODS, ORACLE):
            runs[method] = {}
            for n in sorted(set(args.full_trainings) | {max(args.full_trainings) // 3}):
                runs[method][n] = [replay(table, method, seed, n * table.max_steps, args.eta,
                                          args.min_resource or table.max_steps // 4, args.protocol)
                                   for seed in range(args.seeds)]
        # Per budget replayed: GP+ASHA's seeds ahead of ASHA and level, and the sign test of that split.
        splits = {n: ahead_of_asha(runs, n) for n in runs["asha"]}
        sign_p = {n: sign_test(ahead, args.seeds - ahead - level) for n, (ahead, level) in splits.items()}
        for n in args.full_trainings:
            line = "  ".join(f"{m} {statistics.median(r['best'] for r in runs[m][n]):.4f}" for m in METHODS)
            ahead, level = splits[n]
            print(f"  {n:3d} full trainings, median best final metric: {line} "
                  f"(gp+asha ahead of asha on {ahead}/{args.seeds}, tied on {level}; sign test p {sign_p[n]:.2g})",
                  flush=True)
        big = max(args.full_trainings)
        third = big // 3
        target = [r["best"] for r in runs["random"][big]]
        ours = [r["best"] for r in runs["gp+asha"][third]]
        within = sum(o >= t - 0.003 for o, t in zip(ours, target))
        wins, ties = splits[third]
        print(f"  gp+asha with {third} full trainings vs random with {big}: median {statistics.median(ours):.4f} vs "
              f"{statistics.median(target):.4f} (within 0.3 points on {within}/{args.seeds} seeds; "
              f"median gap {100 * (statistics.median(target) - statistics.median(ours)):+.2f} points)", flush=True)
        print(f"  gp+asha vs asha, both {third} full trainings: better on {wins}/{args.seeds} seeds, "
              f"tied on {ties} (sign test p {sign_p[third]:.2g})", flush=True)
        # Where ASHA already has one of the pool's best configurations, GP+ASHA can at best draw level.
        top = sorted(finals, reverse=True)
        asha_top = {n: tuple(sum(r["best"] >= top[k] for r in runs["asha"][n]) for k in (0, 2))
                    for n in args.full_trainings}
        print("  asha's best is the pool's best / among its 3 best on: "
              + ", ".join(f"{a}/{b} of {args.seeds} seeds at {n}" for n, (a, b) in asha_top.items())
              + " full trainings", flush=True)
        oracle = {n: ahead_of_asha(runs, n, ORACLE) for n in runs["asha"]}
        print("  oracle (gp+asha whose model is told each tried configuration's final metric) vs asha, ahead-behind: "
              + ", ".join(f"{a}-{args.seeds - a - level} at {n}" for n, (a, level) in sorted(oracle.items()))
              + " full trainings", flush=True)
        record["tasks"][table.name] = {"table": str(path), "configs": len(table.configs), "pool_best": pool_best,
                                       "rank_correlation_with_final": early,
                                       "runs": {m: {str(n): v for n, v in r.items()} for m, r in runs.items()},
                                       "within_0.3_points": within, "gp_asha_beats_asha": wins, "ties": ties,
                                       "oracle_ahead_level": {str(n): list(v) for n, v in oracle.items()},
                                       "asha_pool_best_top3": {str(n): list(v) for n, v in asha_top.items()},
                                       "sign_test_p": {str(n): sign_p[n] for n in args.full_trainings}}
    write_json(args.out, record)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
