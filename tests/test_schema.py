"""check_values: a dataclass's type hints as the schema of a JSON object. Tested on the real
run-configuration classes (FinetuneArgs, PretrainArgs) as train.py reads them, on made-up
classes for the hints those do not use, and once end to end through `train.py`."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from albert.errors import AlbertError
from albert.finetune import FinetuneArgs
from albert.pretrain import PretrainArgs
from albert.runconfig import load_run_config, save_run_config
from albert.schema import check_values

REPO = Path(__file__).resolve().parents[1]


def run_config(tmp_path: Path, kind: str, args: dict[str, Any], name: str = "config.json") -> Path:
    """A run configuration file as a run writes it, with `args` as given (valid or not)."""
    path = tmp_path / name
    path.write_text(json.dumps({"kind": kind, "albert_version": "0.1.0", "args": args}))
    return path


def checked(path: Path) -> Any:
    """The args of a run configuration file, checked as train.py checks them."""
    kind, values = load_run_config(path)
    cls = {"finetune": FinetuneArgs, "pretrain": PretrainArgs}[kind]
    return cls(**check_values(cls, values, str(path)))


# (kind, args, what the error says after "<file>: ")
BAD = {
    "lr a word": ("finetune", {"task": "ner", "lr": "fast"}, "key 'lr': expected a finite number or null, got \"fast\""),
    "max_steps a string": ("finetune", {"task": "ner", "max_steps": "3"},
                           "key 'max_steps': expected an integer or null, got \"3\""),
    "max_steps 3.0": ("finetune", {"task": "ner", "max_steps": 3.0}, "key 'max_steps': expected an integer or null, got 3.0"),
    "true for an int": ("finetune", {"task": "ner", "batch_size": True},
                        "key 'batch_size': expected an integer or null, got true"),
    "true for a float": ("pretrain", {"max_grad_norm": True}, "key 'max_grad_norm': expected a finite number, got true"),
    "1 for a bool": ("finetune", {"task": "ner", "compile": 1}, "key 'compile': expected true or false, got 1"),
    "string for a bool": ("pretrain", {"overwrite": "yes"}, "key 'overwrite': expected true or false, got \"yes\""),
    "missing task": ("finetune", {"preset": "micro"}, "missing required key(s) 'task'"),
    "unknown key": ("finetune", {"task": "ner", "learning_rate": 1e-4},
                    "unknown key(s) 'learning_rate'"),
    "misspelt key": ("pretrain", {"max_step": 5}, "unknown key(s) 'max_step' (did you mean 'max_steps'?)"),
    "NaN lr": ("finetune", {"task": "ner", "lr": math.nan}, "key 'lr': expected a finite number or null, got NaN"),
    "infinite epochs": ("finetune", {"task": "ner", "epochs": math.inf},
                        "key 'epochs': expected a finite number or null, got Infinity"),
    "-inf warmup": ("pretrain", {"warmup": -math.inf}, "key 'warmup': expected a finite number or null, got -Infinity"),
    "NaN grad norm": ("pretrain", {"max_grad_norm": math.nan}, "key 'max_grad_norm': expected a finite number, got NaN"),
    "null for a required string": ("finetune", {"task": None}, "key 'task': expected a string, got null"),
    "null where no null": ("pretrain", {"seed": None}, "key 'seed': expected an integer, got null"),
    "number for a string": ("pretrain", {"corpus": 103}, "key 'corpus': expected a string, got 103"),
    "extra not an object": ("finetune", {"task": "ner", "extra": ["a"]}, "key 'extra': expected an object, got [\"a\"]"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_run_config_names_file_and_key(tmp_path, case):
    kind, args, expected = BAD[case]
    path = run_config(tmp_path, kind, args)
    with pytest.raises(AlbertError) as e:
        checked(path)
    assert str(e.value) == f"{path}: {expected}"


@pytest.mark.parametrize("cls", [FinetuneArgs, PretrainArgs])
def test_what_a_run_writes_passes_unchanged(tmp_path, cls):
    """Every value a run saves in its config.json comes back equal, with its type."""
    args = cls(task="sst2", lr=2e-5, warmup=0, max_steps=7, extra={"note": [1, 2]}) if cls is FinetuneArgs \
        else cls(lr=1e-3, warmup=0, max_docs=10, tokenizer="spm")
    save_run_config(tmp_path / "config.json", "finetune" if cls is FinetuneArgs else "pretrain", args)
    back = checked(tmp_path / "config.json")
    assert back == args
    assert type(back.warmup) is float and type(back.lr) is float  # 0 in the file, 0.0 in the dataclass


def test_ints_become_floats_and_json_is_not_second_guessed(tmp_path):
    path = run_config(tmp_path, "finetune", {"task": "ner", "lr": 1, "dropout": 0, "epochs": 2})
    args = checked(path)
    assert (args.lr, args.dropout, args.epochs) == (1.0, 0.0, 2.0)
    assert all(type(v) is float for v in (args.lr, args.dropout, args.epochs))


@dataclass
class Shapes:
    """Hints the run configurations do not use (yet): what check_values promises for them too."""
    pair: tuple[int, str]
    sizes: tuple[int, ...] = ()
    names: list[str] = field(default_factory=list)
    table: dict[int, list[float]] = field(default_factory=dict)
    mode: Literal["fast", "exact"] = "exact"
    anything: Any = None
    either: int | str = 0
    not_init: int = field(default=0, init=False)


def test_containers_literals_and_unions():
    ok = check_values(Shapes, {"pair": [1, "a"], "sizes": [1, 2], "names": ["x"], "table": {"3": [1, 2.5]},
                               "mode": "fast", "anything": {"a": [None]}, "either": "b"}, "s.json")
    assert ok == {"pair": (1, "a"), "sizes": (1, 2), "names": ["x"], "table": {3: [1.0, 2.5]}, "mode": "fast",
                  "anything": {"a": [None]}, "either": "b"}
    assert type(ok["table"][3][0]) is float
    Shapes(**ok)  # and the dataclass takes them
    for values, expected in [
        ({"pair": [1]}, "key 'pair': expected an array of 2 items, got 1"),
        ({"pair": [1, 2]}, "key 'pair[1]': expected a string, got 2"),
        ({"pair": [1, "a"], "sizes": [1, True]}, "key 'sizes[1]': expected an integer, got true"),
        ({"pair": [1, "a"], "names": "x"}, "key 'names': expected an array, got \"x\""),
        ({"pair": [1, "a"], "table": {"x": []}}, "key 'table': expected integer keys, got \"x\""),
        ({"pair": [1, "a"], "table": {"1": [1, "2"]}}, "key 'table[\"1\"][1]': expected a finite number, got \"2\""),
        ({"pair": [1, "a"], "mode": "quick"}, "key 'mode': expected one of \"fast\", \"exact\", got \"quick\""),
        ({"pair": [1, "a"], "either": 1.5}, "key 'either': expected an integer or a string, got 1.5"),
        ({"pair": [1, "a"], "not_init": 3}, "unknown key(s) 'not_init'"),
        ({}, "missing required key(s) 'pair'"),
    ]:
        with pytest.raises(AlbertError) as e:
            check_values(Shapes, values, "s.json")
        assert str(e.value) == f"s.json: {expected}", values


def test_long_values_are_shortened():
    with pytest.raises(AlbertError) as e:
        check_values(FinetuneArgs, {"task": ["x" * 500]}, "c.json")
    message = str(e.value)
    assert message.startswith("c.json: key 'task': expected a string, got [\"xxx") and message.endswith("...")
    assert len(message) < 120


def test_train_py_refuses_a_bad_run_config(tmp_path):
    """End to end, as the user meets it: one line naming the file and key, exit 2, no traceback,
    and no run started (train.py checks through runconfig.build_args)."""
    out = tmp_path / "run"
    path = run_config(tmp_path, "finetune", {"task": "ner", "preset": "micro", "max_steps": "3",
                                              "output_dir": str(out)})
    proc = subprocess.run([sys.executable, "train.py", str(path)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines() == [f"error: {path}: key 'max_steps': expected an integer or null, got \"3\""]
    assert not out.exists()
