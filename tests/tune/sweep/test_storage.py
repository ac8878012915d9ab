"""Sweep storage: a round trip through SQLite, NaN/inf metrics, constraints, and errors."""
import math
import sqlite3

import pytest

from albert.errors import AlbertError
from albert.tune.sweep.storage import DB_NAME, Storage, finished_a_job


def test_round_trip(tmp_path):
    meta = {"settings": {"task": "rte", "budget": 5}, "space": {"lr": {"type": "uniform", "low": 0, "high": 1}}}
    store = Storage.create(tmp_path, meta)
    a = store.add_trial({"lr": 1e-5, "batch_size": 32}, seed=11, job_from=0, job_to=1, sample_index=0)
    b = store.add_trial({"lr": 3e-5, "batch_size": 16}, seed=12, job_from=0, job_to=1, sample_index=1)
    store.start_job(a, 0, 1, "cpu0:123", str(tmp_path / "trials" / "a"))
    store.record(a, 1, 0.5, "report")
    store.record(a, 1, 0.5, "result")
    store.update_trial(a, state="paused", resource=1, metric=0.5)
    store.start_job(a, 1, 3, "cpu1:124", str(tmp_path / "trials" / "a"))
    store.record(b, 1, math.nan, "report")
    store.record(b, 1, math.inf, "result")
    store.update_trial(b, state="failed", resource=1, metric=math.nan, error="non-finite metric")
    store.close()

    store = Storage.open(tmp_path)
    assert store.meta()["settings"] == meta["settings"] and store.meta()["space"] == meta["space"]
    ta, tb = store.trials()
    assert (ta.id, ta.config, ta.seed, ta.sample_index, ta.kind) == (a, {"lr": 1e-5, "batch_size": 32}, 11, 0, "search")
    assert (ta.state, ta.job_from, ta.job_to, ta.worker, ta.resource, ta.metric) == ("running", 1, 3, "cpu1:124", 1, 0.5)
    assert ta.checkpoint == str(tmp_path / "trials" / "a") and ta.heartbeat is not None
    assert ta.rung_metrics == {1: 0.5}
    assert (tb.state, tb.metric, tb.error) == ("failed", None, "non-finite metric")
    assert math.isinf(tb.rung_metrics[1])
    results = store.results()
    assert [(r.trial_id, r.resource, r.source) for r in results] == [(a, 1, "report"), (a, 1, "result"),
                                                                      (b, 1, "report"), (b, 1, "result")]
    assert math.isnan(results[2].metric) and results[3].metric == math.inf
    assert [r.seq for r in results] == sorted(r.seq for r in results)
    assert store.count("search") == 2 and store.count("confirm") == 0
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_constraints_and_errors(tmp_path):
    store = Storage.create(tmp_path, {"settings": {}})
    store.add_trial({}, 1, 0, 1, sample_index=0)
    with pytest.raises(sqlite3.IntegrityError):  # configuration 0 is tried once
        store.add_trial({}, 1, 0, 1, sample_index=0)
    parent = store.add_trial({}, 2, 0, 1, sample_index=1)
    store.add_trial({}, 3, 0, 9, kind="confirm", sample_index=1, parent=parent)
    with pytest.raises(sqlite3.IntegrityError):
        store.add_trial({}, 3, 0, 9, kind="confirm", sample_index=1, parent=parent)
    with pytest.raises(ValueError, match="state"):
        store.update_trial(parent, state="exploded")
    with pytest.raises(AlbertError, match="already holds a sweep"):
        Storage.create(tmp_path, {})
    with pytest.raises(AlbertError, match=f"no {DB_NAME}"):
        Storage.open(tmp_path / "elsewhere")


def test_transaction_rolls_back_as_a_whole(tmp_path):
    store = Storage.create(tmp_path, {})
    tid = store.add_trial({}, 1, 0, 1, sample_index=0)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.record(tid, 1, 0.3, "result")
            store.update_trial(tid, state="paused", resource=1)
            raise RuntimeError("killed half way")
    assert store.results() == [] and store.trial(tid).state == "queued"


def test_a_trial_counts_as_done_from_its_first_finished_job_on(tmp_path):
    """The sweep's "N/budget trials done": a trial ASHA promotes trains again but stays counted,
    so the count a user reads never falls (it used to drop by one at each promotion)."""
    store = Storage.create(tmp_path, {"settings": {}, "space": {}})
    t = store.add_trial({"lr": 1e-3}, seed=1, job_from=0, job_to=1, sample_index=0)
    done = []
    done.append(finished_a_job(store.trials()[0]))                       # queued
    store.start_job(t, 0, 1, "cpu0:1", str(tmp_path / "t"))
    store.record(t, 1, 0.4, "report")
    done.append(finished_a_job(store.trials()[0]))                       # running, reported, not done
    store.record(t, 1, 0.4, "result")
    store.update_trial(t, state="paused", resource=1, metric=0.4)
    done.append(finished_a_job(store.trials()[0]))                       # paused at the rung
    store.start_job(t, 1, 3, "cpu0:1", str(tmp_path / "t"))
    done.append(finished_a_job(store.trials()[0]))                       # promoted, running again
    store.update_trial(t, state="queued")
    done.append(finished_a_job(store.trials()[0]))                       # re-queued after a crash
    store.update_trial(t, state="completed", resource=3, metric=0.6)
    done.append(finished_a_job(store.trials()[0]))
    assert done == [False, False, True, True, True, True]
    store.close()


def test_losses_are_kept_and_a_version_1_database_gains_the_column(tmp_path):
    store = Storage.create(tmp_path / "new", {"settings": {}})
    t = store.add_trial({"lr": 1e-5}, seed=1, job_from=0, job_to=1, sample_index=0)
    store.record(t, 1, 0.5, "report", 0.75)
    store.record(t, 1, 0.5, "result")
    assert [(r.metric, r.loss) for r in store.results()][0] == (0.5, 0.75)
    assert math.isnan(store.results()[1].loss)
    store.close()
    # A database from before the loss column (schema version 1): opening it adds the column.
    old = tmp_path / "old"
    old.mkdir()
    conn = sqlite3.connect(old / DB_NAME)
    conn.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE results (seq INTEGER PRIMARY KEY AUTOINCREMENT, trial_id INTEGER NOT NULL,
                              resource INTEGER NOT NULL, metric REAL, time REAL NOT NULL, source TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO results (trial_id, resource, metric, time, source) VALUES (1, 3, 0.25, 0.0, 'result');
    """)
    conn.commit()
    conn.close()
    store = Storage.open(old)
    (row,) = store.results()
    assert (row.trial_id, row.resource, row.metric) == (1, 3, 0.25) and math.isnan(row.loss)
    store.record(1, 9, 0.5, "report", 0.1)
    assert store.results()[-1].loss == 0.1 and store.meta()["schema_version"] == 2
    store.close()
