"""Progress of the phases before training: log lines off a terminal (counts, share, rate, ETA), a
heartbeat for a phase that reports nothing, a final line with what it took."""
from __future__ import annotations

import time

import pytest

from albert.progress import Meter, counted


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_off_a_terminal_a_line_comes_every_few_seconds_with_counts_and_eta(caplog):
    with caplog.at_level("INFO", logger="albert"):
        meter = Meter("reading", total=400, unit="paragraphs", every=0.05, terminal=False)
        meter.update(100)
        meter.started -= 10.0  # as if 100 paragraphs took 10 s
        time.sleep(0.2)
        meter.note("12 examples")
        meter.close()
    ticks = [line for line in lines(caplog) if line.endswith("so far)")]
    assert any(t.startswith("reading: 100 paragraphs of 400 paragraphs (25%), 10 paragraphs/s, ETA 30 s") for t in ticks)
    assert lines(caplog)[-1].startswith("reading: 100 paragraphs of 400 paragraphs (25%), 10 paragraphs/s, "
                                        "12 examples (took 10 s)")


def test_a_silent_phase_still_shows_its_elapsed_time(caplog):
    with caplog.at_level("INFO", logger="albert"):
        with Meter("vocabulary: training 30000 pieces", every=0.05, terminal=False):
            time.sleep(0.2)
    assert lines(caplog)[0] == "vocabulary: training 30000 pieces: 0 s so far"
    assert lines(caplog)[-1] == "vocabulary: training 30000 pieces: took 0 s"


def test_bytes_read_in_readable_units(caplog, monkeypatch):
    import albert.progress

    clock = [1000.0]  # frozen: on a loaded machine real time passes between the lines below
    monkeypatch.setattr(albert.progress.time, "monotonic", lambda: clock[0])
    meter = Meter("building", total=68_200_000, unit="B", terminal=False, every=100)
    meter.set(34_100_000)
    clock[0] += 120
    assert meter.line().startswith("building: 34.1 MB of 68.2 MB (50%), 284.2 kB/s, ETA 2 min 00 s")
    meter.close()


def test_disabled_is_silent_and_counted_closes_at_the_end(caplog):
    with caplog.at_level("INFO", logger="albert"):
        meter = Meter("x", total=3, enabled=False, terminal=False)
        assert list(counted(iter("abc"), meter)) == ["a", "b", "c"]
        meter.close()
        on = Meter("y", total=3, every=100, terminal=False)
        assert list(counted(iter("abc"), on)) == ["a", "b", "c"]
    assert lines(caplog) == ["y: 3 of 3 (100%), " + lines(caplog)[0].split(", ", 1)[1]]
    assert on.n == 3 and on._stop.is_set()


@pytest.mark.parametrize("seconds, text", [(5, "5 s"), (75, "1 min 15 s"), (3725, "1 h 02 min")])
def test_durations(seconds, text):
    from albert.progress import duration

    assert duration(seconds) == text


def test_a_resumed_phase_counts_its_rate_from_where_it_resumed(monkeypatch):
    import albert.progress

    clock = [1000.0]
    monkeypatch.setattr(albert.progress.time, "monotonic", lambda: clock[0])
    meter = Meter("train", total=100, unit="steps", terminal=False, every=100, initial=60)
    meter.set(65)
    clock[0] += 10  # 5 steps in 10 s since the resume, not 65
    assert meter.line().startswith("train: 65 steps of 100 steps (65%), 0.5 steps/s, ETA 1 min 10 s")
    meter.close()
