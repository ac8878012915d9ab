"""The end-of-sweep report: trials.csv, a leaderboard, best/, compute used, and plots.

Everything is computed from the storage alone, so a report can be rebuilt for any sweep
directory, finished or not.
"""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..atomic import atomic_write, write_json
from .space import LogUniform, Space
from .storage import ResultRecord, TrialRecord


def rank_key(trial: TrialRecord, mode: str) -> tuple:
    """Sort key, best first: further-trained trials first, then by metric; no metric (or NaN) last."""
    m = trial.metric
    if m is None or not math.isfinite(m) or trial.state == "failed":
        return (1, 0, 0.0, trial.id)
    return (0, -trial.resource, -m if mode == "max" else m, trial.id)


def ranked(trials: Sequence[TrialRecord], mode: str) -> list[TrialRecord]:
    return sorted(trials, key=lambda t: rank_key(t, mode))


def compute_used(trials: Sequence[TrialRecord], max_resource: int) -> dict[str, float]:
    """Resource trained, in units and in full-training equivalents (resource / max_resource)."""
    total = sum(t.resource for t in trials)
    return {"resource": total, "full_trainings": total / max_resource}


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def trial_rows(trials: Sequence[TrialRecord], names: Sequence[str], rungs: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for t in trials:
        row: dict[str, Any] = {"id": t.id, "kind": t.kind, "parent": t.parent if t.parent is not None else "",
                               "state": t.state, "seed": t.seed}
        row.update({name: t.config.get(name, "") for name in names})
        row.update({f"metric@{r}": t.rung_metrics.get(r, "") for r in rungs})
        row["final_metric"] = "" if t.metric is None else t.metric
        row["resource"] = t.resource
        row["error"] = (t.error or "").strip().splitlines()[-1] if t.error else ""
        rows.append(row)
    return rows


def write_trials_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_write(path) as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def leaderboard(trials: Sequence[TrialRecord], names: Sequence[str], mode: str, top: int = 10) -> str:
    """A plain-text table of the `top` best trials."""
    best = [t for t in ranked(trials, mode) if t.metric is not None and t.state != "failed"][:top]
    header = ["rank", "trial", "state", "resource", "metric", *names]
    lines = [[str(i + 1), str(t.id), t.state, str(t.resource), _fmt(t.metric), *(_fmt(t.config.get(n, "")) for n in names)]
             for i, t in enumerate(best)]
    widths = [max(len(h), *(len(line[j]) for line in lines)) if lines else len(h) for j, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def _point_run_config_at(path: Path, output_dir: Path) -> None:
    """`python train.py best/config.json` must retrain into best/retrain, not over the trial's own
    directory (which the copy came from)."""
    import json

    if not path.is_file():
        return
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(run, dict) and isinstance(run.get("args"), dict) and "kind" in run:
        run["args"]["output_dir"] = str(output_dir)
        if "overwrite" in run["args"]:
            run["args"]["overwrite"] = False
        write_json(path, run)


def copy_best(trial: TrialRecord, sweep_dir: Path, extra: dict[str, Any]) -> Path:
    """best/ = the best trial's directory (checkpoint and the run's config.json) plus best.json."""
    dest = sweep_dir / "best"
    tmp = sweep_dir / ".best.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if trial.checkpoint and Path(trial.checkpoint).is_dir():
        shutil.copytree(trial.checkpoint, tmp)
    else:
        tmp.mkdir(parents=True)
    _point_run_config_at(tmp / "config.json", dest / "retrain")
    write_json(tmp / "best.json", {"trial_id": trial.id, "metric": trial.metric, "resource": trial.resource,
                                   "seed": trial.seed, "hyperparameters": trial.config, **extra})
    # Swap in whole so best/ is never half old, half new.
    old = sweep_dir / ".best.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def plot(sweep_dir: Path, trials: Sequence[TrialRecord], results: Sequence[ResultRecord], space: Space,
         rungs: Sequence[int], mode: str) -> list[str]:
    """learning_curves.png and parallel_coordinates.png, when matplotlib is installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    curves: dict[int, list[tuple[int, float]]] = {}
    for r in results:
        if math.isfinite(r.metric):
            curves.setdefault(r.trial_id, []).append((r.resource, r.metric))
    states = {t.id: t.state for t in trials}
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"completed": "tab:green", "pruned": "tab:grey", "paused": "tab:blue", "failed": "tab:red"}
    for tid, points in curves.items():
        points = sorted(dict(points).items())
        xs, ys = zip(*points)
        ax.plot(xs, ys, color=colours.get(states.get(tid, ""), "tab:orange"), alpha=0.6, lw=1, marker=".", ms=3)
    for r in rungs:
        ax.axvline(r, color="black", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("resource (rungs dotted)")
    ax.set_ylabel("metric")
    ax.set_title("learning curves (green: completed, grey: pruned, red: failed)")
    fig.tight_layout()
    fig.savefig(sweep_dir / "learning_curves.png", dpi=100)
    plt.close(fig)
    written.append("learning_curves.png")

    # Colour by the first rung's metric: the one resource every trial was trained to, so comparable.
    first = rungs[0]
    scored = [t for t in trials if t.kind == "search" and math.isfinite(t.rung_metrics.get(first, math.nan))]
    numeric = [n for n in space if all(isinstance(t.config.get(n), (int, float)) for t in scored)]
    if scored and numeric:
        def coord(name: str, value: float) -> float:
            return math.log10(value) if isinstance(space[name], LogUniform) else float(value)

        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(numeric)), 5))
        lows = {n: min(coord(n, t.config[n]) for t in scored) for n in numeric}
        highs = {n: max(coord(n, t.config[n]) for t in scored) for n in numeric}
        metrics = [t.rung_metrics[first] for t in scored]
        lo, hi = min(metrics), max(metrics)
        cmap = plt.get_cmap("viridis")
        for t, m in sorted(zip(scored, metrics), key=lambda tm: tm[1] if mode == "max" else -tm[1]):
            ys = [(coord(n, t.config[n]) - lows[n]) / ((highs[n] - lows[n]) or 1.0) for n in numeric]
            shade = (m - lo) / ((hi - lo) or 1.0)
            ax.plot(range(len(numeric)), ys, color=cmap(shade if mode == "max" else 1 - shade), alpha=0.7, lw=1)
        labels = [f"log10 {n}" if isinstance(space[n], LogUniform) else n for n in numeric]
        ax.set_xticks(range(len(numeric)), labels, rotation=20)
        ax.set_yticks([])
        ax.set_title(f"parallel coordinates (colour: metric at the first rung, r={first}; yellow is best)")
        fig.tight_layout()
        fig.savefig(sweep_dir / "parallel_coordinates.png", dpi=100)
        plt.close(fig)
        written.append("parallel_coordinates.png")
    return written
