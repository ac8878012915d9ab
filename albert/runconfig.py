"""Run configurations: every run writes one, and `train.py` re-runs it.

A run configuration is a JSON object `{"kind": "finetune" | "pretrain", "albert_version": ...,
"args": {...}}` whose args are the fully resolved options of that run (task defaults filled in),
so the same command reproduces the same result. The args are a dataclass (FinetuneArgs,
PretrainArgs: the training options of albert/train/options.py plus the recipe's own); the
command lines get one --option per field from it (`add_arguments`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path
from typing import Any

from . import __version__
from .atomic import read_json_object, write_json
from .errors import AlbertError

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
    from .schema import check_values  # issue 12 item 8 (lockcfg): types, NaN/inf and required keys
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
    import types

    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def add_arguments(parser: "argparse.ArgumentParser", cls: type, helps: dict[str, str] | None = None,
                  skip: tuple[str, ...] = ()) -> None:
    """One `--option` per field of the args dataclass `cls`, typed by its annotation. Options
    left out are absent from the namespace, so the dataclass default applies."""
    import argparse

    helps = helps or {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else None
        text = helps.get(f.name, "")
        if default not in (None, ""):
            text = f"{text} (default: {default})".strip()
        if hint is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=text)
            continue

        def convert(raw: str, _hint=hint, _flag=flag) -> Any:
            try:
                return parse_value(raw, _hint, _flag)
            except AlbertError as e:
                raise argparse.ArgumentTypeError(str(e)) from None

        convert.__name__ = getattr(hint, "__name__", "value")
        parser.add_argument(flag, type=convert, default=argparse.SUPPRESS, help=text,
                            required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def parse_recipe_args(prog: str, description: str, cls: type, helps: dict[str, str]) -> tuple[Any, bool]:
    """A recipe's command line (finetune.py, pretrain.py): one --option per field of the args
    dataclass `cls`, and --resume. Returns (args, resume)."""
    parser = UsageParser.make(prog, description)
    add_arguments(parser, cls, helps)
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output-dir "
                        "(with none there yet, start from step 0 and say so)")
    ns = vars(parser.parse_args())
    resume = ns.pop("resume")
    return cls(**one_run_length(ns, given=set(ns))), resume


class UsageParser:
    """argparse exits 2 on a bad option already; this only makes its message one line."""

    @staticmethod
    def make(prog: str, description: str) -> "argparse.ArgumentParser":
        import argparse

        class Parser(argparse.ArgumentParser):
            def error(self, message: str) -> typing.NoReturn:
                self.exit(2, f"{self.prog}: error: {message}\n")

        return Parser(prog=prog, description=description,
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
