"""The end-of-sweep report: trials.csv, a leaderboard, best/, compute used, and plots.

Everything is computed from the storage alone, so a report can be rebuilt for any sweep
directory, finished or not.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from .. import optional
from ..atomic import atomic_write, write_json
from .search.space import LogUniform, Space
from .sweep.storage import ResultRecord, TrialRecord


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


def trial_rows(trials: Sequence[TrialRecord], names: Sequence[str], rungs: Sequence[int],
               metric: str = "metric") -> list[dict[str, Any]]:
    """trials.csv's rows: the metric named (`f1@37`: f1 at the rung of 37 steps; `f1`: the last)."""
    rows = []
    for t in trials:
        row: dict[str, Any] = {"id": t.id, "kind": t.kind, "parent": t.parent if t.parent is not None else "",
                               "state": t.state, "seed": t.seed}
        row.update({name: t.config.get(name, "") for name in names})
        row.update({f"{metric}@{r}": t.rung_metrics.get(r, "") for r in rungs})
        row[metric] = "" if t.metric is None else t.metric
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


def leaderboard(trials: Sequence[TrialRecord], names: Sequence[str], mode: str, metric: str = "metric",
                top: int = 10) -> str:
    """A plain-text table of the `top` best trials."""
    best = [t for t in ranked(trials, mode) if t.metric is not None and t.state != "failed"][:top]
    header = ["rank", "trial", "state", "resource", metric, *names]
    lines = [[str(i + 1), str(t.id), t.state, str(t.resource), _fmt(t.metric), *(_fmt(t.config.get(n, "")) for n in names)]
             for i, t in enumerate(best)]
    widths = [max(len(h), *(len(line[j]) for line in lines)) if lines else len(h) for j, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
    return "\n".join(out)


def sensitivity(model_best: dict[str, Any] | None) -> str | None:
    """One line naming the hyperparameters the GP found the metric most sensitive to; None
    with fewer full trainings than hyperparameters + 1 (the length scales are still the prior's)."""
    lengths = (model_best or {}).get("length_scales")
    if not lengths or model_best.get("results", 0) < len(lengths) + 1:
        return None
    order = sorted(lengths.items(), key=lambda kv: (kv[1], kv[0]))
    return (f"sensitivity, from {model_best['results']} full trainings (the GP's length scale on the "
            "unit interval; shorter: the metric depends on it more): "
            + ", ".join(f"{name} {length:.2g}" for name, length in order))


def _point_run_config_at(path: Path, output_dir: Path) -> None:
    """`python train.py best/config.json` must retrain into best/retrain, not over the trial's own
    directory (which the copy came from)."""
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
         rungs: Sequence[int], mode: str, metric: str = "metric") -> list[str]:
    """learning_curves.png and parallel_coordinates.png; one line on stderr when matplotlib is
    missing (the sweep's results do not depend on it)."""
    try:
        plt = optional.pyplot()
    except ImportError:
        print(f"plots skipped: matplotlib is not installed ({optional.INSTALL['matplotlib']})", file=sys.stderr,
              flush=True)
        return []
    written = [_learning_curves(plt, sweep_dir, trials, results, rungs, metric)]
    if _parallel_coordinates(plt, sweep_dir, trials, space, rungs, mode, metric):
        written.append("parallel_coordinates.png")
    return written


def _learning_curves(plt, sweep_dir: Path, trials: Sequence[TrialRecord], results: Sequence[ResultRecord],
                     rungs: Sequence[int], metric: str) -> str:
    curves: dict[int, list[tuple[int, float]]] = {}
    for r in results:
        if math.isfinite(r.metric):
            curves.setdefault(r.trial_id, []).append((r.resource, r.metric))
    states = {t.id: t.state for t in trials}
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"completed": "tab:green", "pruned": "tab:grey", "paused": "tab:blue", "failed": "tab:red"}
    markers = "os^vD<>ph*"
    for i, (tid, points) in enumerate(sorted(curves.items())):
        xs, ys = zip(*sorted(dict(points).items()))
        # Trials that tie (all at one class, say) lie on one line: hollow markers of different
        # shapes and translucent lines keep each one visible.
        ax.plot(xs, ys, color=colours.get(states.get(tid, ""), "tab:orange"), alpha=0.45, lw=1.2,
                marker=markers[i % len(markers)], ms=6, mfc="none", label=f"trial {tid}" if len(curves) <= 12 else None)
    for r in rungs:
        ax.axvline(r, color="black", lw=0.5, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("training steps (rungs dotted)")
    ax.set_ylabel(metric)
    ax.set_title(f"learning curves: {metric} (green: completed, grey: pruned, blue: paused)")
    if 0 < len(curves) <= 12:
        ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(sweep_dir / "learning_curves.png", dpi=100)
    plt.close(fig)
    return "learning_curves.png"


def _parallel_coordinates(plt, sweep_dir: Path, trials: Sequence[TrialRecord], space: Space, rungs: Sequence[int],
                          mode: str, metric: str) -> bool:
    """One vertical axis per numeric hyperparameter with its own ticks (log-scaled for log-uniform
    ones), one line per trial coloured by the metric, and a colour bar that reads the colours."""
    # Colour by the first rung's metric: the one resource every trial was trained to, so comparable.
    first = rungs[0]
    scored = [t for t in trials if t.kind == "search" and math.isfinite(t.rung_metrics.get(first, math.nan))]
    numeric = [n for n in space if all(isinstance(t.config.get(n), (int, float)) for t in scored)]
    if not scored or not numeric:
        return False
    logs = {n: isinstance(space[n], LogUniform) for n in numeric}

    def coord(name: str, value: float) -> float:
        return math.log10(value) if logs[name] else float(value)

    lows = {n: min(coord(n, t.config[n]) for t in scored) for n in numeric}
    highs = {n: max(coord(n, t.config[n]) for t in scored) for n in numeric}
    for n in numeric:
        if highs[n] == lows[n]:  # one value: centre it on its axis
            lows[n], highs[n] = lows[n] - 0.5, highs[n] + 0.5
    values = [t.rung_metrics[first] for t in scored]
    top = max(values) if max(values) > min(values) else min(values) + 1e-9
    norm = optional.load("matplotlib.colors").Normalize(min(values), top)
    cmap = plt.get_cmap("viridis" if mode == "max" else "viridis_r")  # yellow is best either way
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(numeric)), 5))
    # Best drawn last, on top.
    for t, m in sorted(zip(scored, values), key=lambda tm: tm[1] if mode == "max" else -tm[1]):
        ys = [(coord(n, t.config[n]) - lows[n]) / (highs[n] - lows[n]) for n in numeric]
        ax.plot(range(len(numeric)), ys, color=cmap(norm(m)), alpha=0.8, lw=1.2, marker="o", ms=3)
    for i, n in enumerate(numeric):
        ax.axvline(i, color="black", lw=0.8)
        for k in range(5):  # each axis's own scale: five ticks from its lowest to its highest value
            y = k / 4
            raw = lows[n] + y * (highs[n] - lows[n])
            ax.text(i + 0.03, y, f"{10 ** raw:.2g}" if logs[n] else f"{raw:.3g}", fontsize=7, va="center")
            ax.plot([i - 0.03, i], [y, y], color="black", lw=0.8)
    ax.set_xticks(range(len(numeric)), [f"{n} (log)" if logs[n] else n for n in numeric], rotation=15)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(numeric) - 0.5)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
    bar.set_label(f"{metric} at the first rung ({first} steps)")
    ax.set_title(f"parallel coordinates: {len(scored)} trials coloured by {metric}")
    fig.tight_layout()
    fig.savefig(sweep_dir / "parallel_coordinates.png", dpi=100)
    plt.close(fig)
    return True


def write_hparams(log_dir: Path, trials: Sequence[TrialRecord], names: Sequence[str], metric: str) -> str | None:
    """TensorBoard's HParams view: each scored trial's hyperparameters with its metric and steps,
    one run per trial under `log_dir` (rewritten whole, so a resumed sweep shows each trial once).
    Skipped with one line when tensorboard is not installed. Returns the directory, or None."""
    try:
        tensorboard = optional.load("torch.utils.tensorboard")
    except ImportError:
        install = optional.INSTALL["torch.utils.tensorboard"]
        print(f"TensorBoard HParams skipped: tensorboard is not installed ({install})", file=sys.stderr, flush=True)
        return None
    shutil.rmtree(log_dir, ignore_errors=True)
    writer = tensorboard.SummaryWriter(log_dir=str(log_dir))
    try:
        for t in trials:
            if t.metric is None or not math.isfinite(t.metric) or t.state == "failed":
                continue
            hparams = {n: t.config[n] for n in names if isinstance(t.config.get(n), (int, float, str, bool))}
            writer.add_hparams({**hparams, "kind": t.kind}, {f"hparam/{metric}": t.metric, "hparam/steps": t.resource},
                               run_name=f"trial-{t.id}")
    finally:
        writer.close()
    return str(log_dir)
