"""Every GPU figure this project needs, in one call of about 8 minutes on one H100 or H200.

Sections, in order of importance, each time-boxed (a section that overruns its box, or the
time left of --budget, is cut and recorded as cut) and recorded as soon as it finishes:

  environment          GPU, driver, torch/CUDA, package versions; installs the carried wheels
  gpu_tests            pytest -m gpu (AMP bf16/fp16 steps, exact resume on CUDA, trials sharing a GPU)
  model_throughput     bench_model.py: bf16 training and inference, ours vs transformers, base, seq 128
                       and 512: tokens/s, MFU, peak memory, ratio
  profile              profile_step.py: a base pretraining step's kernel time by class, GPU idle share
  finetune_conll       bench_finetune.py: one CoNLL-2003 epoch, our Trainer vs a plain transformers loop
  pretrain             a short pretraining (base) on the carried wiki slice: loss curve, tokens/s, MFU
  finetune_downstream  CoNLL and SST-2 fine-tuning from that model and from random init, side by side
  tune                 tune.py sweep of base-size trials, --trials-per-gpu 4, GPU utilisation sampled
  fast_paths           bench_fast_paths.py: SDPA vs eager, mask vs none, MLM at masked positions,
                       fused vs foreach optimizers, loader workers and pinned memory
  compile              bench_fast_paths.py: torch.compile, CUDA graphs (--compile-mode reduce-overhead)

Output (at most 8 files come back from a device call): log.txt (every command's output),
results.jsonl (one record per section), summary.txt (the table, also printed last) and
details.tar.gz (each section's JSON records, logs and loss curves), under --out (default $OUT).

The carried folder comes from `bench/gpu_prepare.py` (see bench/README.md for the device command).

  python3 bench/gpu_check.py --prepared .gpu --out $OUT           # on the GPU machine
  python bench/gpu_check.py --dry-run --out /tmp/check            # CPU, tiny shapes, every section
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from gpu_sampler import GpuSampler  # noqa: E402
PY = sys.executable


@dataclass
class Run:
    """One command of a section."""

    name: str
    status: str  # "ok", "failed (exit N)", "cut after N s (box M s)", "skipped: why"
    seconds: float = 0.0
    summary: list[str] = field(default_factory=list)  # its SUMMARY lines


class Check:
    """Runs commands under time boxes and records what they gave, section by section."""

    def __init__(self, out: Path, work: Path, prepared: Path, dry: bool, budget: float, pretrain_steps: int = 500):
        self.out, self.work, self.prepared, self.dry = out, work, prepared, dry
        self.pretrain_steps = pretrain_steps  # --pretrain-steps
        self.deadline = time.monotonic() + budget
        self.details = work / "details"
        for d in (out, self.details, work / "logs"):
            d.mkdir(parents=True, exist_ok=True)
        self.device, self.precision = ("cpu", "fp32") if dry else ("cuda", "bf16")
        self.site: Path | None = None
        self.shared: dict[str, Any] = {}
        self.rows: list[dict] = []

    # --- commands ------------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.monotonic()

    def env(self) -> dict[str, str]:
        paths = [str(p) for p in (self.site, REPO) if p is not None]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(paths + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "ALBERT_DATA": str(self.prepared / "data"), "ALBERT_CACHE": str(self.work / "cache"),
                "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}

    def run(self, name: str, cmd: list[str], box: float) -> Run:
        """Run `cmd` in the repository, cut after `box` seconds (or what is left of the budget);
        its output goes to logs/<name>.log and is appended to out/log.txt."""
        return self.run_many([(name, cmd)], box)[0]

    def run_many(self, commands: list[tuple[str, list[str]]], box: float) -> list[Run]:
        """Run the commands side by side, as `run` does one: all of them are cut when `box`
        seconds (or what is left of the budget) have passed."""
        if self.left() < 3:
            return [Run(name, "skipped: no time left") for name, _ in commands]
        box = min(box, self.left())
        started = time.monotonic()
        procs, ended, status = [], {}, {}
        for name, cmd in commands:
            log = self.work / "logs" / f"{name}.log"
            f = log.open("w")
            f.write(f"$ {' '.join(cmd)}\n")
            f.flush()
            procs.append((name, log, f, subprocess.Popen(cmd, cwd=REPO, env=self.env(), stdout=f, stderr=subprocess.STDOUT,
                                                         start_new_session=True)))  # its own group: a cut ends its workers too
        while len(ended) < len(procs) and time.monotonic() - started < box:
            for name, _, _, proc in procs:
                if name not in ended and proc.poll() is not None:
                    ended[name] = time.monotonic() - started
                    status[name] = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            time.sleep(0.05 if len(ended) < len(procs) else 0)
        runs = []
        for name, log, f, proc in procs:
            if name not in ended and proc.poll() is not None:  # ended just as the box closed
                ended[name] = time.monotonic() - started
                status[name] = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
            if name not in ended:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                ended[name] = time.monotonic() - started
                status[name] = f"cut after {ended[name]:.0f} s (box {box:.0f} s)"
            f.close()
            text = log.read_text(errors="replace")
            with (self.out / "log.txt").open("a") as out:
                out.write(f"\n===== {name}: {status[name]}, {ended[name]:.1f} s\n{text}")
            runs.append(Run(name, status[name], ended[name], [x for x in text.splitlines() if x.startswith("SUMMARY")]))
        return runs

    def python(self, name: str, args: list[str], box: float) -> Run:
        return self.run(name, [PY, *args], box)

    def pick(self, real: Any, dry: Any) -> Any:
        return dry if self.dry else real

    # --- records -------------------------------------------------------------------------------
    def record(self, section: str, status: str, seconds: float, figures: dict, runs: list[Run]) -> None:
        row = {"section": section, "status": status, "seconds": round(seconds, 1), "figures": figures,
               "runs": [asdict(r) for r in runs], "device": self.device, "dry_run": self.dry}
        self.rows.append(row)
        with (self.out / "results.jsonl").open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        (self.details / f"{section}.json").write_text(json.dumps(row, indent=2, default=str))
        tmp = self.out / ".details.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(self.details, arcname="details")
            tar.add(self.work / "logs", arcname="logs")
        os.replace(tmp, self.out / "details.tar.gz")
        (self.out / "summary.txt").write_text(self.table())

    def table(self) -> str:
        lines = [f"{'section':<20} {'status':<34} {'s':>6}  figures"]
        for r in self.rows:
            figures = r["figures"].get("headline") or ""
            lines.append(f"{r['section']:<20} {r['status'][:34]:<34} {r['seconds']:>6.0f}  {figures[:160]}")
        lines.append(f"device {self.device}, {'dry run' if self.dry else 'real run'}; details in details.tar.gz")
        return "\n".join(lines) + "\n"


def worst(runs: list[Run]) -> str:
    """A section's status: its first run that was not ok, else ok."""
    bad = [r for r in runs if r.status != "ok" and not r.status.startswith("skipped: not")]
    return f"{bad[0].name}: {bad[0].status}" if bad else "ok"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def keep(c: Check, path: Path, name: str | None = None) -> None:
    """Copy a run's small output file into the details."""
    if path.is_file() and path.stat().st_size < 4 * 2**20:
        (c.details / (name or path.name)).write_bytes(path.read_bytes())


# --- sections ------------------------------------------------------------------------------------
PROBE = r"""
import json, os, platform, importlib.metadata as md, torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None, "cpus": os.cpu_count(),
        "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                sms=p.multi_processor_count, bf16=torch.cuda.is_bf16_supported())
for name in ("transformers", "tokenizers", "sentencepiece", "safetensors", "scikit-learn", "numpy", "datasets",
             "pyarrow", "dill", "multiprocess", "pytest", "nvidia-ml-py"):
    try:
        info[name] = md.version(name)
    except md.PackageNotFoundError:
        info[name] = None
try:
    import datasets  # noqa: F401
    info["datasets_import"] = "ok"
except Exception as e:
    info["datasets_import"] = f"{type(e).__name__}: {e}"
print(json.dumps(info))
"""


def section_environment(c: Check) -> tuple[dict, list[Run]]:
    runs = []
    wheels = sorted((c.prepared / "wheels").glob("*.whl"))
    has = subprocess.run([PY, "-c", "import datasets"], env=c.env(), capture_output=True).returncode == 0
    if wheels and not has:
        c.site = c.work / "site"
        runs.append(c.python("install_wheels", ["-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                                                "--no-cache-dir", "--upgrade", "--target", str(c.site),
                                                *map(str, wheels)], 60))
    else:
        runs.append(Run("install_wheels", "skipped: not needed" if has else "skipped: not carried (datasets missing)"))
    probe = c.python("probe", ["-c", PROBE], 60)
    runs.append(probe)
    log = (c.work / "logs" / "probe.log").read_text().splitlines()
    info = next((json.loads(x) for x in reversed(log) if x.startswith("{")), {})
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                          "--format=csv,noheader"], capture_output=True, text=True) if not c.dry else None
    info["nvidia_smi"] = smi.stdout.strip() if smi is not None and smi.returncode == 0 else None
    info["headline"] = (f"{info.get('gpu') or 'no GPU'}; torch {info.get('torch')} CUDA {info.get('cuda')}; "
                        f"datasets {info.get('datasets_import')}")
    return info, runs


def section_gpu_tests(c: Check) -> tuple[dict, list[Run]]:
    # -v: each test's outcome on its own line as it ends, so a cut still tells which passed and
    # which one was running (the H200 call of 2026-11-28 cut it after four of five).
    run = c.python("pytest_gpu", ["-m", "pytest", "-v", "-m", "gpu", "-p", "no:cacheprovider", "-rs",
                                  "--durations=0", "tests/test_gpu.py"], 120)
    lines = (c.work / "logs" / "pytest_gpu.log").read_text().splitlines()
    last = next((x for x in reversed(lines) if " in " in x and ("passed" in x or "skipped" in x or "failed" in x)), "")
    outcomes = {}
    for line in lines:
        words = line.split()
        if words and "::" in words[0] and words[0].startswith("tests/"):
            outcomes[words[0].split("::", 1)[1]] = words[1] if len(words) > 1 else "running"
    if run.status.startswith("failed (exit 5)"):  # pytest: nothing collected
        run.status = "ok"
    headline = last.strip("= ") or ", ".join(f"{name} {state}" for name, state in outcomes.items())
    return {"pytest": last.strip("= "), "tests": outcomes, "headline": headline}, [run]


def section_model_throughput(c: Check) -> tuple[dict, list[Run]]:
    runs, records = [], []
    for seq, batch in c.pick(((128, 128), (512, 32)), ((32, 2), (64, 2))):
        out = c.work / f"model-s{seq}.json"
        runs.append(c.python(f"bench_model_s{seq}", [
            "bench/bench_model.py", "--device", c.device, "--precision", c.precision, "--shape", c.pick("base", "micro"),
            "--seq", str(seq), "--batch", str(batch), "--infer-batch", str(batch), "--repeats", c.pick("5", "1"),
            "--warmup", c.pick("2", "0"), "--out", str(out)], c.pick(28, 90)))
        keep(c, out)
        records += (read_json(out) or {}).get("records", [])
    figures = {"records": [{k: r.get(k) for k in ("kind", "head", "seq", "batch", "albert_tokens_per_s",
                                                  "transformers_tokens_per_s", "ratio", "albert_mfu",
                                                  "transformers_mfu", "peak_mem_mib")} for r in records]}
    train = [r for r in records if r["kind"] == "train" and r["head"] == "AlbertForPreTraining"]
    figures["headline"] = "; ".join(f"train s{r['seq']} {r['ratio']:.2f}x"
                                    + (f" MFU {r['albert_mfu']:.0%}" if r.get("albert_mfu") else "") for r in train)
    return figures, runs


def _bench_finetune(c: Check, name: str, out: Path, extra: list[str], box: float) -> Run:
    """bench_finetune.py: one CoNLL-2003 epoch at base shape (a few micro steps in a dry run)."""
    args = ["bench/bench_finetune.py", "--device", c.device, "--precision", c.precision, "--out", str(out), *extra]
    args += c.pick(["--shape", "base", "--repeats", "1", "--num-workers", "2"],
                   ["--shape", "micro", "--max-steps", "3", "--vocab-size", "300", "--max-seq-length", "64"])
    return c.python(name, args, box)


def section_finetune_conll(c: Check) -> tuple[dict, list[Run]]:
    out = c.work / "finetune.json"
    run = _bench_finetune(c, "bench_finetune", out, [], c.pick(110, 150))
    keep(c, out)
    return {"summary": run.summary, "headline": (run.summary[-1].split(": ", 1)[-1][:90] if run.summary else "")}, [run]


def _curve(log: Path) -> list[dict]:
    rows = []
    for line in log.read_text().splitlines() if log.is_file() else []:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        rows.append({k: r[k] for k in ("type", "step", "loss", "mlm_loss", "sop_loss", "mlm_accuracy",
                                        "mlm_masked_accuracy", "sop_accuracy", "tokens_per_s", "mfu",
                                        "sop_balanced_accuracy") if k in r})
    return rows


def section_pretrain(c: Check) -> tuple[dict, list[Run]]:
    out = c.work / "pretrain"
    args = ["pretrain.py", "--corpus", "wiki", "--tokenizer", str(c.prepared / "spm"), "--output-dir", str(out),
            "--device", c.device, "--precision", c.precision, "--seed", "1"]
    steps = c.pretrain_steps
    args += c.pick(["--preset", "base", "--max-seq-length", "128", "--batch-size", "128", "--max-steps", str(steps),
                    "--eval-every", str(max(250, steps // 4)), "--eval-examples", "1024",
                    "--log-every", str(max(25, steps // 100)), "--num-workers", "4",
                    "--num-proc", str(max(1, min(12, (os.cpu_count() or 2) - 4)))],
                   ["--preset", "micro", "--max-seq-length", "64", "--batch-size", "8", "--max-steps", "6",
                    "--eval-every", "3", "--eval-examples", "16", "--log-every", "2", "--num-workers", "2",
                    "--num-proc", "1"])
    # On an H200 500 steps took 21.7 s of training beside 40 s of start-up and data (2026-11-28).
    run = c.python("pretrain", args, c.pick(45 + 0.06 * steps, 150))
    curve = _curve(out / "log.jsonl")
    (c.details / "pretrain_curve.json").write_text(json.dumps(curve, indent=1))
    results = read_json(out / "results.json") or {}
    keep(c, out / "results.json", "pretrain_results.json")
    if (out / "final" / "config.json").is_file():
        c.shared["pretrained"] = out / "final"
    train = [r for r in curve if r.get("type") == "train"]
    tps = results.get("tokens_per_s")
    figures = {"results": {k: results.get(k) for k in ("steps", "tokens_per_s", "mfu", "final", "wall_time_s")},
               "curve_points": len(curve),
               "headline": (f"loss {train[0]['loss']:.2f} -> {train[-1]['loss']:.2f} over {train[-1]['step']} steps; "
                            + (f"{tps:,.0f} tok/s" if tps else "") + (f", MFU {results['mfu']:.0%}" if results.get("mfu") else ""))
               if train else ""}
    return figures, [run]


def section_finetune_downstream(c: Check) -> tuple[dict, list[Run]]:
    # The four fine-tunings run side by side on the one GPU: each alone leaves it idle most of the
    # time (a base step at batch 32 is bound by launching kernels), and only their metrics are
    # recorded here, not their speed.
    runs, commands, best = [], [], {}
    pretrained = c.shared.get("pretrained")
    for task in ("ner", "sst2"):
        for init in ("pretrained", "random"):
            name = f"finetune_{task}_{init}"
            if init == "pretrained" and pretrained is None:
                runs.append(Run(name, "skipped: no pretrained model (the pretrain section did not finish)"))
                continue
            model = ["--model", str(pretrained)] if init == "pretrained" else [
                "--preset", c.pick("base", "micro"), "--tokenizer", str(c.prepared / "spm")]
            args = ["finetune.py", "--task", task, *model, "--output-dir", str(c.work / name), "--device", c.device,
                    "--precision", c.precision, "--no-predict", "--seed", "1"]
            args += c.pick(["--max-steps", "300", "--eval-every", "300", "--batch-size", "32", "--max-seq-length", "128",
                            "--max-eval-samples", "2000", "--num-workers", "2"],
                           ["--max-steps", "3", "--eval-every", "3", "--batch-size", "4", "--max-seq-length", "64",
                            "--max-eval-samples", "32", "--max-train-samples", "64"])
            commands.append((name, [PY, *args]))
    runs += c.run_many(commands, c.pick(80, 240))
    for name, _ in commands:
        results = read_json(c.work / name / "results.json") or {}
        keep(c, c.work / name / "results.json", f"{name}.json")
        best[name] = {"metric": results.get("metric"), "best": results.get("best_metric"),
                      "samples_per_s": results.get("train_samples_per_s")}
    head = [f"{k.removeprefix('finetune_')} {v['best']:.3f}" for k, v in best.items() if v.get("best") is not None]
    return {"runs": best, "headline": "; ".join(head)}, runs


def section_tune(c: Check) -> tuple[dict, list[Run]]:
    out = c.work / "sweep"
    args = ["tune.py", "--task", "sst2", "--tokenizer", str(c.prepared / "spm"), "--output-dir", str(out),
            "--device", c.device, "--seed", "0", "--eta", "3"]
    # Base-size trials long enough that training, not the workers' start, fills the sweep (on an
    # H200 a small-preset sweep of 8 trials up to 90 steps had finished no trial after 50 s).
    args += c.pick(["--preset", "base", "--budget", "16", "--max-resource", "600", "--trials-per-gpu", "4",
                    "--max-train-samples", "16000", "--max-eval-samples", "872", "--max-seq-length", "64"],
                   ["--preset", "micro", "--budget", "2", "--max-resource", "3", "--workers", "2",
                    "--max-train-samples", "64", "--max-eval-samples", "32", "--max-seq-length", "32"])
    sampler = GpuSampler()
    sampler.start()
    run = c.python("tune", args, c.pick(100, 150))
    gpu = sampler.stop()
    summary = read_json(out / "summary.json") or {}
    keep(c, out / "summary.json", "tune_summary.json")
    keep(c, out / "trials.csv", "tune_trials.csv")
    trials = (out / "trials.csv").read_text().count("\n") - 1 if (out / "trials.csv").is_file() else None
    util = (f"GPU util mean {gpu['util_mean_span']:.0f}% over the {gpu['span_s']:.0f} s it was in use "
            f"({gpu['util_mean']:.0f}% over the section)") if gpu.get("samples") else \
        f"GPU utilisation not sampled ({gpu.get('source') or 'no NVML, no nvidia-smi'})"
    return {"gpu": gpu, "trials": trials, "best": summary.get("best"),
            "headline": f"{trials} trials in {run.seconds:.0f} s; {util}"}, [run]


def section_profile(c: Check) -> tuple[dict, list[Run]]:
    out = c.work / "profile.json"
    run = c.python("profile_step", ["bench/profile_step.py", "--device", c.device, "--precision", c.precision,
                                    "--shape", c.pick("base", "micro"), "--batch", c.pick("128", "2"),
                                    "--seq", c.pick("128", "32"), "--out", str(out)], c.pick(40, 120))
    keep(c, out, "profile_step.json")
    record = read_json(out) or {}
    figures = {k: record.get(k) for k in ("step_ms", "tokens_per_s", "kernel_ms", "launches", "gpu_idle_share",
                                          "classes_ms", "top")}
    figures["headline"] = run.summary[-1].split(": ", 1)[-1][:150] if run.summary else ""
    return figures, [run]


def _fast_path_runs(c: Check, variants: list[tuple[str, list[str], float]]) -> tuple[list[dict], list[Run]]:
    common = ["bench/bench_fast_paths.py", "--device", c.device, "--precision", c.precision, "--shape",
              c.pick("base", "micro"), "--seq", c.pick("128", "32"), "--batch", c.pick("64", "2"),
              "--repeats", c.pick("3", "1")]
    runs, rows = [], []
    for name, extra, box in variants:
        out = c.work / f"{name}.json"
        runs.append(c.python(name, [*common, *extra, "--out", str(out)], box))
        keep(c, out, f"bench_{name}.json")  # details/<section>.json is the section's row
        rows += [dict(r, run=name) for r in (read_json(out) or {}).get("results", [])]
    return rows, runs


def _headline(rows: list[dict]) -> str:
    return "; ".join(f"{r['run'] if r['run'] != 'fast_paths' else r['section']} {r['what'].split()[0]} {r['on']} "
                     f"{r['speedup']:.2f}x" for r in rows
                     if "speedup" in r and r["section"] in ("attention", "compile", "lamb", "adamw"))


def section_fast_paths(c: Check) -> tuple[dict, list[Run]]:
    rows, runs = _fast_path_runs(c, [("fast_paths", ["--only", "attention", "mask", "mlm_head", "adamw", "lamb",
                                                     "loader"], c.pick(30, 150))])
    return {"rows": rows, "headline": _headline(rows)}, runs


def section_compile(c: Check) -> tuple[dict, list[Run]]:
    # Compiling the base model's training step took longer than 35 s on an H200 (2026-11-28).
    rows, runs = _fast_path_runs(c, [("compile", ["--only", "compile"], c.pick(100, 200)),
                                     ("cuda_graphs", ["--only", "compile", "--compile-mode", "reduce-overhead"],
                                      c.pick(100, 200))])
    # The fine-tuning step is bound by the host (about 1000 kernels launched one by one): fewer,
    # fused kernels are what could take the CoNLL epoch from 1.34x transformers to 2x (2026-11-28).
    out = c.work / "finetune_compiled.json"
    runs.append(_bench_finetune(c, "finetune_compiled", out, ["--runs", "albert", "--compile"], c.pick(150, 200)))
    keep(c, out, "bench_finetune_compiled.json")
    # The trainer's own switch for CUDA graphs, where this checkout's CLI has one.
    helptext = subprocess.run([PY, "pretrain.py", "--help"], cwd=REPO, env=c.env(), capture_output=True, text=True).stdout
    compiled = ((read_json(out) or {}).get("runs") or {}).get("albert", {}).get("time_s")
    headline = _headline(rows) + (f"; CoNLL epoch compiled (compiling included) {compiled:.1f} s" if compiled else "")
    return {"rows": rows, "trainer_compile_mode_option": "--compile-mode" in helptext,
            "finetune_compiled_epoch_s": compiled, "headline": headline}, runs


SECTIONS: list[tuple[str, Callable[[Check], tuple[dict, list[Run]]]]] = [
    ("environment", section_environment), ("gpu_tests", section_gpu_tests),
    ("model_throughput", section_model_throughput), ("profile", section_profile),
    ("finetune_conll", section_finetune_conll), ("pretrain", section_pretrain),
    ("finetune_downstream", section_finetune_downstream), ("tune", section_tune), ("fast_paths", section_fast_paths),
    ("compile", section_compile),
]


def run_sections(c: Check, sections: list[tuple[str, Callable]]) -> None:
    """Each section in turn; an exception in one is recorded and the next one runs."""
    for name, fn in sections:
        started = time.monotonic()
        if c.left() < 3:
            c.record(name, "skipped: no time left", 0.0, {}, [])
            continue
        try:
            figures, runs = fn(c)
            status = worst(runs)
        except Exception as e:  # a bug in one section must not cost the others
            figures, runs, status = {}, [], f"error: {type(e).__name__}: {e}"
        c.record(name, status, time.monotonic() - started, figures, runs)
        print(f"[{name}] {status} ({time.monotonic() - started:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT"), help="results folder (default: $OUT)")
    ap.add_argument("--prepared", default=None,
                    help="the folder bench/gpu_prepare.py made (default: .gpu; with --dry-run a tiny one made "
                         "under --work)")
    ap.add_argument("--budget", type=float, default=465.0, help="seconds for all sections together")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, every section")
    ap.add_argument("--work", default=None, help="scratch folder for the runs (default: a temporary one)")
    ap.add_argument("--pretrain-steps", type=int, default=500,
                    help="steps of the pretrain section (its box grows with them): 500 for the speed figures; "
                         "about 8000 (6 minutes) for the downstream quality targets, in a call of its own")
    ap.add_argument("--only", nargs="+", choices=[n for n, _ in SECTIONS], help="run these sections alone")
    ap.add_argument("--skip", nargs="+", default=[], choices=[n for n, _ in SECTIONS], help="leave these sections out")
    args = ap.parse_args(argv)
    if not args.out:
        ap.error("--out is required when $OUT is not set")
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_check-"))
    if args.prepared:
        prepared = Path(args.prepared)
    elif args.dry_run:
        prepared = work / "prepared"
        subprocess.run([PY, str(REPO / "bench" / "gpu_prepare.py"), "--tiny", "--dest", str(prepared)], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        prepared = REPO / ".gpu"
    c = Check(Path(args.out), work, prepared, args.dry_run, args.budget if not args.dry_run else 10**6,
              pretrain_steps=args.pretrain_steps)
    sections = [(n, f) for n, f in SECTIONS if (not args.only or n in args.only) and n not in args.skip]
    run_sections(c, sections)
    print("\n" + c.table(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
