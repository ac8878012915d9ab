"""Run configurations: every run writes one, and `train.py` re-runs it.

A run configuration is a JSON object `{"kind": "finetune" | "pretrain", "albert_version": ...,
"args": {...}}` whose args are the fully resolved options of that run (task defaults filled in),
so the same command reproduces the same result. The args are a dataclass (FinetuneArgs,
PretrainArgs: the training options of albert/train/options.py plus the recipe's own); the
command lines get one --option per field from it (`add_arguments`).
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any

from . import __version__
from .atomic import read_json_object, write_json
from .errors import AlbertError
from .schema import check_values
from .train.budget import parse_duration
from .train.options import CHOICES, HELP, TrainingOptions

KINDS = ("finetune", "pretrain", "tune")


def save_run_config(path: str | Path, kind: str, args: Any) -> None:
    """Write `args` (a dataclass) as the run configuration at `path`, atomically."""
    write_json(path, {"kind": kind, "albert_version": __version__, "args": dataclasses.asdict(args)})


def load_run_config(path: str | Path) -> tuple[str, dict[str, Any]]:
    path = Path(path)
    d = read_json_object(path, missing="no such run configuration")
    if d.get("kind") not in KINDS or not isinstance(d.get("args"), dict):
        hint = " (this looks like a model config.json; pass the run's config.json instead)" \
            if d.get("model_type") else ""
        raise AlbertError(f"{path}: not a run configuration: expected {{\"kind\": one of {KINDS}, \"args\": {{...}}}}"
                          f"{hint}")
    return d["kind"], d["args"]


def build_args(cls: type, values: dict[str, Any], source: str) -> Any:
    """Instantiate the args dataclass `cls` from a dict, naming unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise AlbertError(f"{source}: unknown option(s) {', '.join(unknown)}")
    return cls(**check_values(cls, values, source))


def apply_overrides(cls: type, values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set key=value` overrides, parsing each value as the field's type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out = dict(values)
    for item in overrides:
        if "=" not in item:
            raise AlbertError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in fields:
            hint = option_hint(key, ["--" + name.replace("_", "-") for name in fields], as_key=True)
            if hint:
                raise AlbertError(f"--set {key}: unknown option; {hint}")
            raise AlbertError(f"--set {key}: unknown option; known: {', '.join(sorted(fields))}")
        out[key] = parse_value(raw, hints[key], f"--set {key}")
    return one_run_length(out, given={item.split("=", 1)[0].strip().replace("-", "_") for item in overrides})


# A run's length is max_steps or epochs; the options refuse both (TrainingOptions.validate).
RUN_LENGTH = ("max_steps", "epochs")


def one_run_length(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The one of max_steps/epochs that was `given` (on the command line, by --set) replaces the
    other's default (pretraining's max_steps) or saved value; given both, they stay for the
    options' check to refuse."""
    if not set(RUN_LENGTH) <= given:
        for name, other in (RUN_LENGTH, RUN_LENGTH[::-1]):
            if name in given and values.get(name) is not None:
                values[other] = None
    return values


def parse_value(raw: str, hint: Any, where: str) -> Any:
    """Parse a command-line string as the type a dataclass field declares."""
    if raw.lower() in ("none", "null"):
        return None
    # A union (X | None) tries each of its types; any other hint is tried as a whole.
    args = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else []
    kinds = args or [hint]
    for kind in kinds:
        try:
            if kind is bool:
                if raw.lower() in ("1", "true", "yes", "on"):
                    return True
                if raw.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
            if kind in (int, float, str):
                value = kind(raw)
            else:
                value = json.loads(raw)
                if typing.get_origin(kind) is tuple:  # e.g. betas: "[0.9, 0.98]"
                    if not isinstance(value, list) or len(value) != len(typing.get_args(kind)):
                        raise ValueError(raw)
                    value = tuple(value)
        except (ValueError, json.JSONDecodeError):
            continue
        # float() and JSON both read "nan", "inf" and 1e999; no option means them (issue 12).
        if not _all_finite(value):
            raise AlbertError(f"{where}: expected a finite number, got {raw!r}")
        return value
    raise AlbertError(f"{where}: cannot parse {raw!r} as {hint}")


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def add_arguments(parser: argparse.ArgumentParser, cls: type, helps: dict[str, str] | None = None,
                  skip: tuple[str, ...] = (), title: str | None = None, *, only: tuple[str, ...] | None = None,
                  flags: dict[str, str] | None = None) -> None:
    """One `--option` per field of the args dataclass `cls` (`only` those, less `skip`), typed by
    its annotation, with its help (`helps`, else the training options' own), its default and its
    allowed values; `flags` names the options of fields called otherwise ({field: option}), whose
    values still land under the field's name. Options left out are absent from the namespace, so
    the dataclass default applies. A recipe's own options (`title`) are listed before the
    training options it shares with the others."""
    shared = {f.name for f in dataclasses.fields(TrainingOptions)} if issubclass(cls, TrainingOptions) else set()
    helps = {**HELP, **(helps or {})}
    flags = flags or {}
    hints = typing.get_type_hints(cls)
    own_group = parser.add_argument_group(title) if title else parser
    training_group = parser.add_argument_group("training options") if shared else parser
    fields = [f for f in dataclasses.fields(cls)
              if f.name not in skip and f.name != "extra" and (only is None or f.name in only)]
    for f in sorted(fields, key=lambda f: f.name in shared):  # stable: each part keeps its order
        group = training_group if f.name in shared else own_group
        option = flags.get(f.name, f.name)
        flag = "--" + option.replace("_", "-")
        hint = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(option, "")
        if default not in (None, "") and "(default:" not in text:
            shown = "on" if default is True else "off" if default is False else default
            text = f"{text} (default: {shown})".strip()
        if hint is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=text)
            continue

        def convert(raw: str, _hint=hint, _flag=flag) -> Any:
            try:
                return parse_value(raw, _hint, _flag)
            except AlbertError as e:
                raise argparse.ArgumentTypeError(str(e)) from None

        convert.__name__ = getattr(hint, "__name__", "value")
        group.add_argument(flag, dest=f.name, type=convert, default=argparse.SUPPRESS, help=text,
                           choices=CHOICES.get(f.name), metavar=None if f.name in CHOICES else option.upper(),
                           required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def parse_recipe_args(prog: str, description: str, cls: type, helps: dict[str, str],
                      epilog: str | None = None, title: str | None = None) -> tuple[Any, bool]:
    """A recipe's command line (finetune.py, pretrain.py): one --option per field of the args
    dataclass `cls`, and --resume. Returns (args, resume)."""
    parser = UsageParser.make(prog, description, epilog)
    add_arguments(parser, cls, helps, title=title)
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --output-dir (which must be given; with "
                        "no checkpoint there yet, start from step 0 and say so)")
    ns = vars(parser.parse_args())
    resume = ns.pop("resume")
    if ns.get("time_budget") is not None:
        try:
            parse_duration(ns["time_budget"])
        except AlbertError as e:
            parser.error(str(e))
    if ns.get("time_budget") is not None and ns.get("max_steps", ns.get("epochs")) is not None:
        parser.error("give --time-budget or --max-steps/--epochs, not both: the budget fixes the steps")
    return cls(**one_run_length(ns, given=set(ns))), resume


# Hugging Face Trainer / example-script option names -> ours, for "did you mean" hints. A value
# with a space is an option with its value; None: the option has no counterpart and is not needed.
HF_OPTIONS: dict[str, str | None] = {
    "learning_rate": "--lr", "model_name_or_path": "--model", "num_train_epochs": "--epochs",
    "per_device_train_batch_size": "--batch-size", "per_gpu_train_batch_size": "--batch-size",
    "train_batch_size": "--batch-size", "per_device_eval_batch_size": "--eval-batch-size",
    "per_gpu_eval_batch_size": "--eval-batch-size", "fp16": "--precision fp16", "bf16": "--precision bf16",
    "eval_steps": "--eval-every", "save_steps": "--save-every", "logging_steps": "--log-every",
    "warmup_steps": "--warmup", "warmup_ratio": "--warmup", "num_warmup_steps": "--warmup",
    "gradient_accumulation_steps": "--grad-accum", "lr_scheduler_type": "--schedule",
    "adam_beta1": "--betas", "adam_beta2": "--betas", "adam_epsilon": "--eps",
    "overwrite_output_dir": "--overwrite", "metric_for_best_model": "--metric",
    "early_stopping_patience": "--patience", "dataloader_num_workers": "--num-workers",
    "save_total_limit": "--keep-last", "resume_from_checkpoint": "--resume", "task_name": "--task",
    "tokenizer_name": "--tokenizer", "validation_file": "--dev-file", "torch_compile": "--compile",
    "no_cuda": "--device cpu", "use_cpu": "--device cpu",
    "max_seq_len": "--max-seq-length", "do_predict": "--predict",
    "do_train": None, "do_eval": None, "load_best_model_at_end": None, "evaluation_strategy": None,
    "eval_strategy": None, "save_strategy": None,
}


def option_hint(name: str, known: typing.Iterable[str], as_key: bool = False) -> str | None:
    """A hint for an unknown option `name` (without its dashes) on a command line whose options are
    `known` (with dashes): our spelling of a Hugging Face name, the dashed form of an underscore
    spelling, or a close match; None when there is nothing to suggest. `as_key` names the
    suggestion as a config key (`lr`, `precision=fp16`) for `--set`."""
    def spell(ours: str) -> str:
        if not as_key:
            return ours
        flag, _, value = ours.partition(" ")
        key = flag[2:].replace("-", "_")
        return f"{key}={value}" if value else key

    known = set(known)
    if name in HF_OPTIONS:
        ours = HF_OPTIONS[name]
        if ours is None:
            return "not needed: every run trains, evaluates and keeps its best model (see --help)"
        if ours.split()[0] in known:
            return f"did you mean {spell(ours)}? (Hugging Face's --{name})"
    dashed = "--" + name.replace("_", "-")
    if dashed in known:
        return f"did you mean {spell(dashed)}?"
    close = difflib.get_close_matches(dashed, sorted(k for k in known if k.startswith("--")), n=1, cutoff=0.75)
    return f"did you mean {spell(close[0])}?" if close else None


class UsageParser:
    """argparse exits 2 on a bad option already; this makes its message one line, and answers an
    unknown option (a Hugging Face name, an underscore spelling) with the option it probably means."""

    @staticmethod
    def make(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
        class Parser(argparse.ArgumentParser):
            def error(self, message: str) -> typing.NoReturn:
                self.exit(2, f"{self.prog}: error: {message}\n")

            def parse_known_args(self, args=None, namespace=None):
                args = list(sys.argv[1:] if args is None else args)
                # Before argparse: a missing required option would otherwise be reported first.
                for token in args:
                    if token == "--":
                        break
                    if not token.startswith("--") or len(token) < 3:
                        continue
                    name = token[2:].split("=", 1)[0]
                    flag = "--" + name
                    if flag in self._option_string_actions or any(k.startswith(flag) for k in self._option_string_actions):
                        continue  # ours, or an abbreviation of ours (argparse decides)
                    hint = option_hint(name, self._option_string_actions)
                    if hint:
                        self.error(f"unrecognized argument {flag}: {hint}")
                return super().parse_known_args(args, namespace)

        return Parser(prog=prog, description=description, epilog=epilog,
                      formatter_class=HelpFormatter)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and the epilog's line breaks (their tables); wraps the options' help."""
