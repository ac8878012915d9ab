"""Checkpoints: `checkpoints/step-N/` directories, verified by a manifest, written atomically;
and the one rule for starting over in a directory that holds an earlier run's checkpoints."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from ..atomic import WriteError, as_os_error, atomic_dir, atomic_write, remove_temporaries
from ..errors import AlbertError, TrainingWarning

REQUIRED_FILES = ("model.pt", "optimizer.pt", "trainer.pt")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CheckpointStore:
    """`root/step-N/` directories of torch.save files plus a manifest.json with their sha256.

    A checkpoint is written into a temporary directory and renamed into place (`atomic_dir`),
    so `step-N/` either exists complete or not at all; the manifest still guards against files
    damaged afterwards. Only the newest `keep_last` are kept. `fingerprint` (a hash of the
    settings that shape the run) and `settings` go into every manifest, so that a resume with
    other settings can be named.
    """

    def __init__(self, root: Path, keep_last: int = 1, fingerprint: str = "", settings: dict[str, Any] | None = None):
        self.root, self.keep_last, self.fingerprint = Path(root), keep_last, fingerprint
        self.settings = settings

    def steps(self) -> list[tuple[int, Path]]:
        """Checkpoint directories, newest first."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            m = re.fullmatch(r"step-(\d+)", p.name)
            if m and p.is_dir():
                found.append((int(m.group(1)), p))
        return sorted(found, reverse=True)

    def save(self, step: int, objects: dict[str, Any]) -> Path:
        """Write `objects` (name -> picklable data and tensors) as `step-N/`; drop the oldest."""
        final = self.root / f"step-{step}"
        try:
            # Another process's write in progress looks just like a killed one's leftovers: those
            # are removed by the Trainer at its start, under the directory's lock, never here.
            with atomic_dir(final) as tmp:  # the same step saved again (after a resume) is replaced
                files = {}
                for name, obj in objects.items():
                    path = tmp / f"{name}.pt"
                    try:
                        torch.save(obj, path)
                    except RuntimeError as e:  # a full disk, in its zip writer's words ("unexpected pos")
                        raise as_os_error(e, tmp) from None
                    files[path.name] = _sha256(path)
                manifest = {"format": 1, "step": step, "config": self.fingerprint, "files": files}
                if self.settings is not None:
                    manifest["settings"] = self.settings
                with atomic_write(tmp / "manifest.json") as f:
                    json.dump(manifest, f, indent=2)
        except (OSError, WriteError) as e:
            reason = e.reason if isinstance(e, WriteError) else e.strerror or str(e)
            kept = self.steps()
            previous = f"the previous checkpoint {kept[0][1]} is intact" if kept else "no earlier checkpoint exists"
            raise AlbertError(f"{final}: cannot write the checkpoint ({reason}); {previous}") from e
        for _, old in self.steps()[self.keep_last:]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def verify(self, path: Path) -> str | None:
        """None when the checkpoint is complete and intact, else what is wrong with it."""
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            files = manifest["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"unreadable manifest.json ({e})"
        for name in REQUIRED_FILES:
            if name not in files:
                return f"manifest lists no {name}"
        for name, digest in files.items():
            p = path / name
            if not p.is_file():
                return f"{name} is missing"
            if _sha256(p) != digest:
                return f"{name} does not match its sha256 in manifest.json (truncated or corrupt)"
        for name in files:
            # A file put there with a matching manifest must still be tensors and plain data: it
            # is unpickled without running code (weights_only) and its tensors only mapped (mmap).
            try:
                torch.load(path / name, map_location="cpu", weights_only=True, mmap=True)
            except Exception as e:
                return f"{name} is not a checkpoint file ({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})"
        return None

    def newest_valid(self) -> Path | None:
        """The newest checkpoint that verifies; warns about each newer one that does not."""
        for _, path in self.steps():
            problem = self.verify(path)
            if problem is None:
                return path
            warnings.warn(f"{path}: skipping checkpoint: {problem}; falling back to an older one",
                          TrainingWarning, stacklevel=3)
        return None

    def manifest(self, path: Path) -> dict:
        return json.loads((path / "manifest.json").read_text())

    def warn_if_other_settings(self, path: Path) -> None:
        """Resuming with other trajectory settings works, but will not match an uninterrupted run: say which."""
        manifest = self.manifest(path)
        if manifest.get("config") == self.fingerprint:
            return
        saved, now = manifest.get("settings"), self.settings
        changed = ""
        if isinstance(saved, dict) and now is not None:
            diffs = [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now))
                     if saved.get(k) != now.get(k)]
            changed = f" ({', '.join(diffs)})" if diffs else ""
        warnings.warn(f"{path}: saved with different training options than this run's{changed}; "
                      "the resumed run will not match an uninterrupted one", TrainingWarning, stacklevel=3)

    def clear(self) -> None:
        """Remove every checkpoint, and what killed saves left; only for the directory's lock holder."""
        for _, path in self.steps():
            shutil.rmtree(path, ignore_errors=True)
        if self.root.is_dir():
            remove_temporaries(self.root, "step-*")

    @staticmethod
    def load(path: Path, name: str, map_location: Any = "cpu") -> Any:
        # weights_only: a checkpoint holds tensors and plain data, never code.
        try:
            return torch.load(path / f"{name}.pt", map_location=map_location, weights_only=True)
        except Exception as e:  # refused globals (pickled code), a foreign or damaged file
            raise AlbertError(f"{path / f'{name}.pt'}: not a checkpoint this trainer wrote "
                              f"({type(e).__name__}: {str(e).strip().splitlines()[0][:200]})") from None


def refuse_earlier_run(output_dir: str | os.PathLike, *, resuming: bool = False) -> None:
    """A run about to start from step 0 must not take over a directory holding an earlier run's
    checkpoints (nor replace the config.json that describes them), unless told to (--overwrite).
    `resuming`: a --resume found none of them intact."""
    root = Path(output_dir) / "checkpoints"
    steps = CheckpointStore(root).steps()
    if not steps:
        return
    if resuming:
        raise AlbertError(f"{root}: no intact checkpoint to resume from (each was skipped, see the warnings); "
                          "pass --overwrite to start the run over")
    raise AlbertError(f"{output_dir}: holds checkpoints of an earlier run (up to step {steps[0][0]}); "
                      "pass --resume to continue it, or use another --output-dir")
