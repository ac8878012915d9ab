"""The run's log: log.jsonl (one JSON object per logged step or evaluation), TensorBoard when
asked for (--report-to tensorboard), and the running totals (losses, rows, tokens, time) it reports."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import optional
from ..atomic import atomic_write
from ..errors import AlbertError


class RunLog:
    """log.jsonl and, with `tensorboard`, the same numbers as TensorBoard scalars (`<type>/<key>`,
    e.g. train/loss, eval/f1) under output_dir/tensorboard; written by rank 0 only (`enabled`)."""

    def __init__(self, output_dir: Path, enabled: bool, tensorboard: bool = False):
        self.path = output_dir / "log.jsonl"
        self.tb_dir = output_dir / "tensorboard"
        self.enabled = enabled
        self.tensorboard = tensorboard
        self._file = None
        self._tb = None

    def open(self, resume_step: int | None) -> None:
        """Start the log; on resume keep only the lines up to the checkpoint's step."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by the kill
                if record.get("step", 0) <= resume_step:
                    kept.append(line)
        with atomic_write(self.path) as f:
            f.writelines(line + "\n" for line in kept)
        self._file = open(self.path, "a", encoding="utf-8")
        if not self.tensorboard:
            return
        try:
            tensorboard = optional.load("torch.utils.tensorboard")
        except ImportError:
            raise AlbertError("--report-to tensorboard needs the tensorboard package: "
                              f"{optional.INSTALL['torch.utils.tensorboard']}") from None
        purge = None if resume_step is None else resume_step + 1
        self._tb = tensorboard.SummaryWriter(str(self.tb_dir), purge_step=purge)

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as e:
            self._discard()  # its buffer still holds the line: closing would fail again, with a traceback
            raise AlbertError(f"{self.path}: cannot write the log ({e.strerror or e})") from None
        if self._tb is not None:
            prefix = record.get("type", "train")
            for k, v in record.items():
                if k not in ("type", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{prefix}/{k}", v, record["step"])

    def _discard(self) -> None:
        """Close the file without writing what its buffer holds (after a failed write)."""
        f, self._file = self._file, None
        try:
            os.close(f.fileno())  # the descriptor alone: no flush of the buffered line
        except OSError:
            pass
        try:
            f.close()  # now fails to flush into the closed descriptor; nothing is lost that was not already
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self._file is not None:
            f, self._file = self._file, None
            try:
                f.close()
            except OSError as e:
                raise AlbertError(f"{self.path}: cannot write the log ({e.strerror or e})") from None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


@dataclass
class Window:
    """A stretch of steps (since the last logged one, or the whole run): the rows, tokens and
    training time this process counted on the host. The losses and gradient norms of the window
    are summed on the device (guard.py) and read only when it is logged."""

    rows: float = 0.0
    tokens: float = 0.0
    time: float = 0.0

    def add(self, rows: float, tokens: float, elapsed: float) -> None:
        self.rows += rows
        self.tokens += tokens
        self.time += elapsed

    def record(self, step: int, epoch: float, *, loss: float | None, grad_norm: float | None, lr: float,
               metrics: dict[str, float], skipped: bool, mfu_of: Any = None) -> dict[str, Any]:
        """The log line: the window's mean loss (None: every step skipped) and gradient norm, the
        last step's lr and metrics, samples and tokens per second (and MFU when `mfu_of(tokens_per_s)`
        knows it). `rows` and `tokens` are those of all processes by then (see Trainer._log)."""
        dt = max(self.time, 1e-9)
        tokens_per_s = self.tokens / dt
        record: dict[str, Any] = {
            "type": "train", "step": step, "epoch": epoch, "loss": loss, "lr": lr, "grad_norm": grad_norm,
            "samples_per_s": self.rows / dt, "tokens_per_s": tokens_per_s,
        }
        mfu = mfu_of(tokens_per_s) if mfu_of is not None else None
        if mfu is not None:
            record["mfu"] = mfu
        if skipped:
            record["skipped"] = True
        record.update(metrics)
        return record
