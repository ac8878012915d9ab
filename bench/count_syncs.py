"""Host syncs per training step: the points where the host would wait for the GPU, counted on a CPU.

A GPU runs behind the host, which queues kernels ahead of it; every value the host reads back
(or every shape that depends on one) makes it wait until the GPU has caught up, and the queue
runs dry. No GPU is needed to find them: the operations that cause them are the same on every
device. Counted here:

  scalar read     aten._local_scalar_dense: .item(), float(t), int(t), bool(t), `if t:`
  data-dependent  aten.nonzero, masked_select, unique, repeat_interleave without output_size, and
                  indexing or index_put with a boolean mask (CUDA turns the mask into indices with
                  nonzero); their output shape is only known once the device has computed them
  to host         Tensor.tolist() / .numpy() / .cpu() on the step's tensors
  from host       torch.tensor(..., device=...) and torch.as_tensor(..., device=...): a blocking
                  copy from pageable memory (a non_blocking .to() of a pinned batch is not one)

Each one is attributed to the innermost line of this repository that caused it (and, when torch
code did the read, the torch line too).

Two views:
  model    one training step of the model alone on a batch from the real collate: forward +
           backward, then the optimizer step. Pretraining (AlbertForPreTraining + LAMB, fp32;
           and fp16 through a GradScaler) and fine-tuning (AlbertForTokenClassification + AdamW).
  trainer  every step of short real runs (`albert.pretrain.run`, `albert.finetune.run`) through
           the trainer's step function, logging and non-logging steps apart.

  python bench/count_syncs.py                 # tables, and bench/results/syncs.json
  python bench/count_syncs.py --only model    # model view only

Run against another checkout (the "before" figures) with PYTHONPATH pointing at it: the script
uses only entry points that exist in both.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import inspect
import json
import random
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
REPO = Path(__file__).resolve().parents[1]

DATA_DEPENDENT = {aten.nonzero.default, aten.masked_select.default, aten.unique_dim.default,
                  aten._unique2.default, aten._unique.default, aten.unique_consecutive.default,
                  aten.argwhere.default, aten.nonzero_numpy.default}
BOOL_INDEXED = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


@dataclass
class Event:
    kind: str  # "scalar read", "data-dependent", "to host", "from host"
    op: str
    where: str  # innermost line of this repository
    via: str  # innermost line of torch, when torch code did it ("" otherwise)


COUNTER_FRAMES = {"_add", "_locate", "__torch_dispatch__", "counted"}
TORCH_PLUMBING = ("_dynamo", "_compile.py", "utils/_python_dispatch", "overrides", "_ops.py")


def _locate() -> tuple[str, str]:
    """(innermost line of this repository, innermost torch line inside it) of the Python stack."""
    where, via = "?", ""
    roots = (_root(), REPO)
    for frame in reversed(traceback.extract_stack()):
        path = Path(frame.filename).resolve()
        if path == Path(__file__).resolve() and frame.name in COUNTER_FRAMES:
            continue
        rel = next((path.relative_to(r) for r in roots if path.is_relative_to(r)), None)
        if rel is None:
            inside = "/".join(path.parts[path.parts.index("torch"):]) if "torch" in path.parts else ""
            if inside and not via and not any(p in inside for p in TORCH_PLUMBING):
                via = f"{inside}:{frame.lineno}"
            continue
        where = f"{rel}:{frame.lineno}"
        break
    return where, via


def _root() -> Path:
    """The checkout whose `albert` package is imported (another one for the "before" figures)."""
    import albert

    return Path(albert.__file__).resolve().parents[1]


class HostSyncs(TorchDispatchMode):
    """Records an `Event` for every operation listed in the module docstring while active."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self.paused = 0  # > 0: inside host-only code (the data loader), whose tensors are the host's own

    def _add(self, kind: str, op: str) -> None:
        if self.paused:
            return
        where, via = _locate()
        if torch._C._current_graph_task_id() != -1:  # inside loss.backward(): no Python frame of ours
            op += " in backward"
        self.events.append(Event(kind, op, where, via))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default:
            self._add("scalar read", "item")
        elif func in DATA_DEPENDENT:
            self._add("data-dependent", func.__name__)
        elif func is aten.repeat_interleave.Tensor and kwargs.get("output_size") is None:
            self._add("data-dependent", "repeat_interleave")
        elif func in BOOL_INDEXED and any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
                                          for i in (args[1] if len(args) > 1 else ())):
            self._add("data-dependent", f"{func.__name__} with a boolean mask")
        return func(*args, **kwargs)

    # Python-level reads that never reach the dispatcher on a CPU tensor.
    def __enter__(self):
        def wrap(owner, name, kind, check=lambda *a, **k: True):
            original = getattr(owner, name)

            def counted(*args, **kwargs):
                if check(*args, **kwargs):
                    self._add(kind, name)
                return original(*args, **kwargs)
            self._patches.append((owner, name, original))
            setattr(owner, name, counted)

        for name in ("tolist", "numpy", "cpu"):
            wrap(torch.Tensor, name, "to host")
        for name in ("tensor", "as_tensor"):
            wrap(torch, name, "from host", lambda *a, **k: k.get("device") is not None)
        return super().__enter__()

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._patches):
            setattr(owner, name, original)
        self._patches.clear()
        return super().__exit__(*exc)


def summarise(events: list[Event]) -> dict[str, int]:
    """'kind op at where [via]' -> count."""
    return dict(collections.Counter(f"{e.kind}: {e.op} at {e.where}" + (f" (via {e.via})" if e.via else "")
                                    for e in events))


# --- data ----------------------------------------------------------------------------------------
SYLLABLES = ["ka", "lo", "mi", "ten", "ra", "su", "ven", "dor", "pa", "li", "gro", "bel", "nu", "sa", "tor"]
WORDS = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("", "s", "n")})[:400]


def corpus_text(n_docs: int, seed: int) -> str:
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "."
    return "\n\n".join(" ".join(sentence() for _ in range(rng.randint(2, 8))) for _ in range(n_docs)) + "\n"


def conll_text(n: int, seed: int) -> str:
    rng = random.Random(seed)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    lines = []
    for i in range(n):
        for j in range(rng.randint(3, 12)):
            lines.append(f"{rng.choice(WORDS)} NN B-NP {tags[(i + j) % 9] if j == 0 else rng.choice(tags)}")
        lines.append("")
    return "\n".join(lines) + "\n"


# --- the model view --------------------------------------------------------------------------------
def _pretraining_batch(batch_size: int, seq: int, vocab: int) -> dict[str, torch.Tensor]:
    """A batch from the real pretraining collate, over made-up rows of mixed lengths."""
    import numpy as np

    from albert.data import pretraining

    rng = np.random.default_rng(0)
    masker = pretraining.NgramMasker(rng.random(vocab) < 0.6, seed=0)
    rows = []
    for _ in range(batch_size):
        n = int(rng.integers(seq // 2, seq - 2)) if rng.random() < 0.3 else seq - 3
        a = int(rng.integers(1, n - 1))
        ids = rng.integers(5, vocab, size=n).tolist()
        rows.append({"input_ids": [2, *ids[:a], 3, *ids[a:], 3], "token_type_ids": [0] * (a + 2) + [1] * (n - a + 1),
                     "sentence_order_label": int(rng.integers(0, 2))})
    indices = list(range(batch_size))
    if "indices" in inspect.signature(pretraining.pretraining_collate).parameters:
        return pretraining.pretraining_collate(rows, masker, epoch=0, indices=indices)
    # Before: rows carried their index, and the collate took the epoch positionally.
    return pretraining.pretraining_collate([{**r, "index": i} for i, r in enumerate(rows)], masker, 0)


def _finetuning_batch(batch_size: int, seq: int, vocab: int, labels: int) -> dict[str, torch.Tensor]:
    """Token classification rows padded by the fine-tuning tasks' padder (its defaults)."""
    from albert.data.batching import pad_batch

    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(batch_size):
        n = int(torch.randint(seq // 4, seq, (), generator=g))
        rows.append({"input_ids": torch.randint(5, vocab, (n,), generator=g).tolist(),
                     "token_type_ids": [0] * n, "labels": torch.randint(0, labels, (n,), generator=g).tolist()})
    return pad_batch(rows)


def model_view(seq: int, batch_size: int) -> dict[str, dict[str, Any]]:
    """Syncs of one steady-state training step (after a warm-up step) of each case."""
    from albert.config import preset
    from albert.model import AlbertForPreTraining, AlbertForTokenClassification
    from albert.optim import make_optimizer

    vocab = 1000
    cases: dict[str, Callable[[], tuple[torch.nn.Module, dict, torch.optim.Optimizer, str]]] = {}

    def pretraining(precision: str):
        torch.manual_seed(0)
        model = AlbertForPreTraining(preset("micro", vocab_size=vocab))
        return model, _pretraining_batch(batch_size, seq, vocab), make_optimizer(model, "lamb", 1e-3), precision

    def finetuning():
        torch.manual_seed(0)
        model = AlbertForTokenClassification(preset("micro", vocab_size=vocab, num_labels=9))
        return model, _finetuning_batch(batch_size, seq, vocab, 9), make_optimizer(model, "adamw", 1e-4), "fp32"

    cases["pretraining, LAMB, fp32"] = lambda: pretraining("fp32")
    cases["pretraining, LAMB, fp16 + GradScaler"] = lambda: pretraining("fp16")
    cases["fine-tuning (token classification), AdamW, fp32"] = finetuning
    out = {}
    for name, make in cases.items():
        model, batch, opt, precision = make()
        scaler = torch.amp.GradScaler("cpu", enabled=precision == "fp16")
        autocast = (torch.autocast("cpu", dtype=torch.float16) if precision == "fp16" else contextlib.nullcontext())
        counts = {}
        for attempt in range(2):  # the first step creates the optimizer state
            with HostSyncs() as fwd_bwd:
                with autocast:
                    loss = model(**batch).loss
                scaler.scale(loss).backward()
            with HostSyncs() as step:
                if scaler.is_enabled():
                    scaler.unscale_(opt)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
            counts = {"forward + backward": summarise(fwd_bwd.events), "optimizer step": summarise(step.events)}
        out[name] = {"total": sum(sum(c.values()) for c in counts.values()), **counts,
                     "batch_keys": sorted(batch)}
    return out


# --- the trainer view ------------------------------------------------------------------------------
# Where the trainer's loop, its step function and the collate wrapper live (newest first).
LOOP_FUNCTIONS = ("albert.train.loop:Trainer._loop",)
STEP_FUNCTIONS = ("albert.train.loop:Trainer._train_step",)
# The data loader works on the host's own tensors (in worker processes, on a GPU machine): not syncs.
HOST_ONLY = ((torch.utils.data.DataLoader, "__iter__"), (torch.utils.data.dataloader._BaseDataLoaderIter, "__next__"))


def _find(specs: tuple[str, ...]) -> tuple[Any, str, Callable]:
    import importlib

    for spec in specs:
        module, qual = spec.split(":")
        owner_name, method = qual.split(".")
        try:
            owner = getattr(importlib.import_module(module), owner_name)
            return owner, method, getattr(owner, method)
        except (ImportError, AttributeError):
            continue
    raise SystemExit(f"cannot find any of {', '.join(specs)}; add the new location to bench/count_syncs.py")


@contextlib.contextmanager
def counting_steps(steps: list[list[Event]]) -> Iterator[None]:
    """Count every sync of the training loop, each attributed to the step it follows: from one call
    of the step function to the next (so a step's logging, evaluation and saving are its own), except
    inside the data loader (HOST_ONLY)."""
    loop_owner, loop_name, loop = _find(LOOP_FUNCTIONS)
    step_owner, step_name, step = _find(STEP_FUNCTIONS)
    mode: list[HostSyncs] = []
    starts: list[int] = []  # index of the first event of each step

    def counted_loop(self, *args, **kwargs):
        with HostSyncs() as syncs:
            mode.append(syncs)
            starts.clear()
            try:
                return loop(self, *args, **kwargs)
            finally:
                mode.pop()
                # Events before the first step (setting up) belong to no step.
                ends = starts[1:] + [len(syncs.events)]
                steps.extend(syncs.events[a:b] for a, b in zip(starts, ends))

    def counted_step(self, *args, **kwargs):
        starts.append(len(mode[-1].events))
        return step(self, *args, **kwargs)

    def host_only(original):
        def paused(*args, **kwargs):
            if mode:
                mode[-1].paused += 1
            try:
                return original(*args, **kwargs)
            finally:
                if mode:
                    mode[-1].paused -= 1
        return paused

    patches = [(loop_owner, loop_name, loop, counted_loop), (step_owner, step_name, step, counted_step),
               *((owner, name, getattr(owner, name), host_only(getattr(owner, name))) for owner, name in HOST_ONLY)]
    for owner, name, _, new in patches:
        setattr(owner, name, new)
    try:
        yield
    finally:
        for owner, name, old, _ in patches:
            setattr(owner, name, old)


def _by_step_kind(steps: list[list[Event]], max_steps: int, log_every: int) -> dict[str, Any]:
    """Steps 1..max_steps (each run evaluates and saves at its last step only) by kind."""
    kinds = {"non-logging steps": [], "logging steps": [], "last step (logs, evaluates, saves)": []}
    for i, events in enumerate(steps, 1):
        kind = ("last step (logs, evaluates, saves)" if i == max_steps else
                "logging steps" if i % log_every == 0 else "non-logging steps")
        kinds[kind].append(events)
    out = {}
    for label, group in kinds.items():
        if group:
            # The events of one representative step (the last), by place.
            out[label] = {"steps": len(group), "syncs per step": sorted({len(e) for e in group}),
                          "one step": summarise(group[-1])}
    return out


def trainer_view(work: Path) -> dict[str, Any]:
    """Short runs through the real entry points, counting every step."""
    from albert.finetune import FinetuneArgs
    from albert.finetune import run as finetune
    from albert.pretrain import PretrainArgs
    from albert.pretrain import run as pretrain

    (work / "corpus.txt").write_text(corpus_text(120, 0))
    (work / "ner").mkdir(exist_ok=True)
    for split, n, seed in (("train", 200, 1), ("valid", 40, 2), ("test", 40, 3)):
        (work / "ner" / f"{split}.txt").write_text(conll_text(n, seed))
    common = dict(max_steps=9, log_every=3, device="cpu", progress=False, seed=1)
    out = {}
    records: list[list[Event]] = []
    with counting_steps(records):
        pretrain(PretrainArgs(output_dir=str(work / "pt"), corpus=str(work / "corpus.txt"), preset="micro",
                              vocab_size=200, max_seq_length=64, batch_size=8, eval_every=100, eval_examples=16,
                              num_proc=1, **common))
    out["pretraining (pretrain.run, LAMB)"] = _by_step_kind(records, 9, 3)
    records.clear()
    with counting_steps(records):
        finetune(FinetuneArgs(task="ner", output_dir=str(work / "ft"), preset="micro", data_dir=str(work / "ner"),
                              vocab_size=200, max_seq_length=64, batch_size=8, eval_every=100, predict=False,
                              **common))
    out["fine-tuning (finetune.run ner, AdamW)"] = _by_step_kind(records, 9, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["model", "trainer"])
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "syncs.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    report: dict[str, Any] = {"checkout": str(_root()), "torch": torch.__version__}
    if args.only in (None, "model"):
        report["model"] = model_view(args.seq, args.batch)
        print("== model: one training step (steady state) ==")
        for name, r in report["model"].items():
            print(f"{name}: {r['total']} host syncs   (batch: {', '.join(r['batch_keys'])})")
            for part in ("forward + backward", "optimizer step"):
                for what, n in r[part].items():
                    print(f"    {part:<19} {n} x {what}")
    if args.only in (None, "trainer"):
        with tempfile.TemporaryDirectory() as tmp:
            import os

            os.environ.setdefault("ALBERT_CACHE", str(Path(tmp) / "cache"))
            report["trainer"] = trainer_view(Path(tmp))
        print("== trainer: every step of short runs ==")
        for name, kinds in report["trainer"].items():
            for label, r in kinds.items():
                print(f"{name}, {label} ({r['steps']}): {'/'.join(map(str, r['syncs per step']))} host syncs per step")
                for what, n in r["one step"].items():
                    print(f"    {n} x {what}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    try:
        import albert  # noqa: F401  (PYTHONPATH may name another checkout: the "before" figures)
    except ImportError:
        sys.path.insert(0, str(REPO))
    main()
