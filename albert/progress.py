"""Progress of the long phases before training (reading text, training a vocabulary, building
examples), so that a run is never silent for minutes.

A `Meter` is a tqdm bar on a terminal (counts, rate, ETA) and, when stderr is not a terminal (a
log file, a pipe), one log line every `every` seconds with the same figures, and a last one with
what the phase took. It refreshes from a
background thread too, so a phase that reports nothing for a while (SentencePiece training, which
runs in C++) still shows its elapsed time.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

log = logging.getLogger("albert")

T = TypeVar("T")
EVERY_S = 10.0  # seconds between log lines when stderr is not a terminal


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def _count(n: float, unit: str) -> str:
    if unit == "B":
        for scale, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if n >= scale:
                return f"{n / scale:.1f} {name}"
        return f"{n:.0f} B"
    return (f"{n:,.0f} {unit}" if n >= 1 or n == 0 else f"{n:.2g} {unit}").rstrip()  # 0.5 steps/s, not 0


class Meter:
    """Progress of one phase: `update(n)`, `set(n)`, `note(text)`; a context manager that closes it.
    `total` None: no percentage or ETA, only counts (or, with no counts, the elapsed time)."""

    def __init__(self, desc: str, total: float | None = None, unit: str = "", enabled: bool = True,
                 every: float | None = None, terminal: bool | None = None, initial: float = 0):
        """`initial`: what was done before this process (a resumed run); the rate and ETA count
        only what is done from here."""
        self.desc, self.total, self.unit = desc, total, unit
        self.every = EVERY_S if every is None else every
        self.enabled = enabled
        self.n = self._n0 = float(initial)
        self.text = ""
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bar = None
        if not enabled:
            return
        terminal = sys.stderr.isatty() if terminal is None else terminal
        if terminal:
            self._bar = tqdm(total=total, desc=desc, unit=unit if unit != "B" else "B", unit_scale=unit == "B",
                             dynamic_ncols=True, mininterval=0.5, initial=initial)
        self._thread = threading.Thread(target=self._tick, name=f"progress: {desc}", daemon=True)
        self._thread.start()

    def update(self, n: float = 1) -> None:
        self.set(self.n + n)

    def set(self, n: float) -> None:
        with self._lock:
            step, self.n = n - self.n, n
            if self._bar is not None and step:
                self._bar.update(step)

    def set_total(self, total: float) -> None:
        with self._lock:
            self.total = total
            if self._bar is not None:
                self._bar.total = total

    def note(self, text: str) -> None:
        """A short status after the counts (e.g. '53,012 examples')."""
        with self._lock:
            self.text = text
            if self._bar is not None:
                self._bar.set_postfix_str(text, refresh=False)

    def line(self, final: bool = False) -> str:
        """The figures as one line: counts, share, rate, ETA (what the log gets off a terminal)."""
        elapsed = time.monotonic() - self.started
        figures = []
        if self.n or self.total:
            done = _count(self.n, self.unit)
            if self.total:
                done += f" of {_count(self.total, self.unit)} ({100 * self.n / self.total:.0f}%)"
            figures.append(done)
            done_here = self.n - self._n0
            if done_here > 0 and elapsed > 0:
                figures.append(f"{_count(done_here / elapsed, self.unit)}/s")
            if self.total and done_here > 0 and not final:
                figures.append(f"ETA {duration(elapsed * max(0.0, self.total - self.n) / done_here)}")
        if self.text:
            figures.append(self.text)
        so_far = f"took {duration(elapsed)}" if final else f"{duration(elapsed)} so far"
        return f"{self.desc}: {', '.join(figures)} ({so_far})" if figures else f"{self.desc}: {so_far}"

    def _tick(self) -> None:
        interval = 1.0 if self._bar is not None else self.every
        while not self._stop.wait(interval):
            with self._lock:
                if self._bar is not None:
                    self._bar.refresh()
                else:
                    log.info("%s", self.line())

    def close(self) -> None:
        if not self.enabled or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if self._bar is not None:
            self._bar.close()
        else:
            log.info("%s", self.line(final=True))

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def counted(items: Iterable[T], meter: Meter) -> Iterator[T]:
    """Yield `items`, counting each on `meter`; the meter closes when they are exhausted."""
    try:
        for item in items:
            meter.update()
            yield item
    finally:
        meter.close()
