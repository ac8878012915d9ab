"""Where fine-tuning data comes from: local files (checked line by line) or the Hugging Face hub.

Resolution order for every reader: explicit files (`train_file=`, `dev_file=`), then an explicit
`data_dir`, then `$ALBERT_DATA/<subdir>`, and only when none of these is given the hub. Local data
that was asked for but is missing is an error, never a silent fall back to the hub.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import datasets
import datasets.config

from ..errors import AlbertError, located

DATA_ENV = "ALBERT_DATA"


def local_dir(data_dir: str | os.PathLike | None, subdir: str) -> Path | None:
    """The directory holding a data set's files, or None when no local data was configured."""
    if data_dir is not None:
        path = Path(data_dir)
    elif os.environ.get(DATA_ENV):
        path = Path(os.environ[DATA_ENV]) / subdir
    else:
        return None
    if not path.is_dir():
        raise AlbertError(f"{path}: data directory not found")
    return path


def resolve_files(subdir: str, names: Mapping[str, str], data_dir: str | os.PathLike | None,
                  overrides: Mapping[str, str | os.PathLike | None],
                  required: Sequence[str], directories: bool = False) -> dict[str, Path] | None:
    """Split name -> file for local data, or None when the hub should be used.

    `names` are the file names inside the data directory; `overrides` are files the caller
    named explicitly (they must exist). A split in `required` must be found; others are optional
    (QNLI and SQuAD have only their dev files here). With `directories`, each split is a
    directory instead of a file (RACE: one file per article).
    """
    exists = Path.is_dir if directories else Path.is_file
    given = {split: Path(p) for split, p in overrides.items() if p is not None}
    if data_dir is None and given and os.environ.get(DATA_ENV):
        # Explicit files with $ALBERT_DATA set: take the other splits from there when it has them.
        base = Path(os.environ[DATA_ENV]) / subdir
        base = base if base.is_dir() else None
    elif data_dir is None and given:
        base = None
    else:
        base = local_dir(data_dir, subdir)
    if base is None and not given:
        return None
    files: dict[str, Path] = {}
    for split, name in names.items():
        if split in given:
            path = given[split]
        elif base is not None:
            path = base / name
        else:
            continue
        if exists(path):
            files[split] = path
        elif split in given or split in required:
            raise AlbertError(f"{path}: data {'directory' if directories else 'file'} not found")
    for split in required:
        if split not in files:
            raise AlbertError(f"no {split} data file: give a data directory or the {split} file itself")
    return files


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without the line ending); bad UTF-8 is an error naming the line.

    A UTF-8 byte-order mark at the start of the file is dropped (MRPC's files have one).
    """
    try:
        f = open(path, "rb")
    except OSError as e:
        raise AlbertError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise located(path, lineno, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield lineno, text.rstrip("\r\n")


def hub_offline() -> bool:
    """True when the user switched the hub off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    return bool(datasets.config.HF_HUB_OFFLINE or getattr(datasets.config, "HF_DATASETS_OFFLINE", False))


def load_from_hub(names: Sequence[str], config: str | None, local_hint: str):
    """`datasets.load_dataset` under the first of `names` that works, as a DatasetDict."""
    if hub_offline():
        raise AlbertError(f"no local data and the hub is offline: {local_hint}")
    errors = []
    for name in names:
        try:
            return datasets.load_dataset(name, config) if config else datasets.load_dataset(name)
        except Exception as e:  # network, missing dataset, script-based dataset: try the next name
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    raise AlbertError(f"could not load {' or '.join(names)} from the hub ({'; '.join(errors)}); {local_hint}")
