"""The sweep's durable record: one SQLite database, `sweep.db`, in the sweep directory.

Everything needed to rebuild a sweep after a crash lives here: the sweep's metadata (task,
space, scheduler settings, master seed), one row per trial (configuration, seed, state, the job
it is running, checkpoint directory, heartbeat, worker, error) and an append-only log of every
metric the trials reported, in arrival order, which is replayed into a fresh scheduler.

Only the sweep's main process writes; WAL mode lets a report or a `sqlite3` shell read while it
runs, and every write is its own committed transaction so a kill -9 loses at most the write in
flight.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import AlbertError
from ..search.space import current_names

DB_NAME = "sweep.db"
STATES = ("queued", "running", "paused", "completed", "pruned", "failed")
TERMINAL = ("completed", "pruned", "failed")
SCHEMA_VERSION = 2  # 2: results.loss (a version-1 database gains the column when opened)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'search',      -- 'search', or 'confirm' (an extra seed of a top trial)
    sample_index INTEGER,                     -- index passed to Space.sample (search trials)
    parent INTEGER,                           -- the search trial a confirm trial repeats
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    state TEXT NOT NULL,
    job_from INTEGER,                         -- the job in flight (or last run)
    job_to INTEGER,
    resource INTEGER NOT NULL DEFAULT 0,      -- resource reached by finished jobs
    metric REAL,                              -- metric at `resource` (NULL: none yet, or NaN)
    checkpoint TEXT,
    heartbeat REAL,
    worker TEXT,
    error TEXT,
    retries INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
-- A configuration index is tried once; a confirm seed of a trial is run once.
CREATE UNIQUE INDEX IF NOT EXISTS trials_search ON trials (sample_index) WHERE kind = 'search';
CREATE UNIQUE INDEX IF NOT EXISTS trials_confirm ON trials (parent, sample_index) WHERE kind = 'confirm';
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    resource INTEGER NOT NULL,
    metric REAL,                              -- NULL stands for NaN (SQLite stores NaN as NULL)
    time REAL NOT NULL,
    loss REAL,                                -- the validation loss reported with it (NULL: none)
    source TEXT NOT NULL                      -- 'report' (intermediate), 'result' (end of a job) or
                                              -- 'error' (the job failed: NaN at its start)
);
CREATE INDEX IF NOT EXISTS results_trial ON results (trial_id, resource);
-- How each search trial's configuration was chosen, and from what: the last result the sampler
-- had seen and the trials pending then. With the results table this is the sampler's whole
-- input, so any proposal can be recomputed from the database (sampler.recompute).
CREATE TABLE IF NOT EXISTS proposals (
    trial_id INTEGER PRIMARY KEY REFERENCES trials (id),
    sampler TEXT NOT NULL,
    seen INTEGER NOT NULL,                    -- results.seq of the last result seen (0: none)
    pending TEXT NOT NULL,                    -- JSON [[trial_id, to_resource], ...]
    info TEXT NOT NULL                        -- JSON: how (sobol, random, model), acquisition value, ms, ...
);
"""


@dataclass
class TrialRecord:
    id: int
    kind: str
    sample_index: int | None
    parent: int | None
    config: dict[str, Any]
    seed: int
    state: str
    job_from: int | None
    job_to: int | None
    resource: int
    metric: float | None
    checkpoint: str | None
    heartbeat: float | None
    worker: str | None
    error: str | None
    retries: int
    created: float
    updated: float
    # resource -> metric at the end of each finished job (the rungs), filled by Storage.trials()
    rung_metrics: dict[int, float] = field(default_factory=dict)


def finished_a_job(trial: TrialRecord) -> bool:
    """Whether `trial` has finished at least one job: it ended, is paused at a rung, or was
    promoted from one and trains (or waits) again - `resource` grows only when a job ends."""
    return trial.state in TERMINAL or trial.state == "paused" or trial.resource > 0


@dataclass
class ProposalRecord:
    trial_id: int
    sampler: str
    seen: int
    pending: list[tuple[int, int]]
    info: dict[str, Any]


@dataclass
class ResultRecord:
    seq: int
    trial_id: int
    resource: int
    metric: float
    time: float
    source: str
    loss: float = math.nan  # the validation loss reported with the metric (NaN: none)


def _to_sql(metric: float | None) -> float | None:
    # SQLite turns NaN into NULL anyway; +-inf survive as REAL.
    return None if metric is None or math.isnan(metric) else float(metric)


def _from_sql(metric: float | None) -> float:
    return math.nan if metric is None else float(metric)


class Storage:
    """A sweep's SQLite database. Open with `Storage.create` (new sweep) or `Storage.open` (resume)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # isolation_level=None: we commit each statement ourselves (autocommit), which keeps every
        # write durable the moment it returns.
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (not a power cut) and skips an fsync per write.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    @classmethod
    def create(cls, sweep_dir: str | Path, meta: dict[str, Any]) -> "Storage":
        path = Path(sweep_dir) / DB_NAME
        if path.exists():
            raise AlbertError(f"{sweep_dir}: already holds a sweep ({DB_NAME}); resume it or choose a new directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path)
        with store.transaction():
            for key, value in {**meta, "schema_version": SCHEMA_VERSION, "created": time.time()}.items():
                store.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
        return store

    @classmethod
    def open(cls, sweep_dir: str | Path) -> "Storage":
        path = Path(sweep_dir) / DB_NAME
        if not path.is_file():
            raise AlbertError(f"{sweep_dir}: no sweep to resume here (no {DB_NAME})")
        try:
            store = cls(path)
            # A damaged file (cut short, overwritten in the middle) fails here, in one line, not
            # halfway through a replay; quick_check reads every page, and a sweep.db is small.
            problems = [row[0] for row in store.conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                store.close()
                raise sqlite3.DatabaseError(" ".join("; ".join(problems[:2]).split())[:200])
            version = store.meta().get("schema_version")
        except sqlite3.DatabaseError as e:
            raise AlbertError(f"{path}: damaged, not a readable sweep database ({e}); restore it from a copy, or "
                              "start the sweep again in a new --output-dir") from None
        if version == 1:  # written before results had a loss column: add it (NULL, "none reported")
            with store.transaction():
                store.conn.execute("ALTER TABLE results ADD COLUMN loss REAL")
                store.set_meta("schema_version", SCHEMA_VERSION)
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise AlbertError(f"{path}: sweep database version {version}, this albert reads {SCHEMA_VERSION}")
        return store

    @classmethod
    def read_only(cls, sweep_dir: str | Path, what: str) -> "Storage":
        """Another sweep's database, opened for reading only (nothing in it is created or
        upgraded); `what` names it in the one-line refusal of a missing or unreadable one."""
        path = Path(sweep_dir) / DB_NAME
        if not path.is_file():
            raise AlbertError(f"{what} {sweep_dir}: not a sweep directory (no {DB_NAME})")
        store = cls.__new__(cls)
        store.path = path
        try:
            store.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
            store.conn.row_factory = sqlite3.Row
            version = store.meta().get("schema_version")
            store.conn.execute("SELECT COUNT(*) FROM trials JOIN results ON results.trial_id = trials.id").fetchone()
        except (sqlite3.DatabaseError, ValueError) as e:
            raise AlbertError(f"{what} {sweep_dir}: {DB_NAME} is not a readable sweep database ({e})") from None
        if version not in (1, SCHEMA_VERSION):
            store.close()
            raise AlbertError(f"{what} {sweep_dir}: sweep database version {version}, this albert reads {SCHEMA_VERSION}")
        if version == 1:  # no loss column: read it as NULL ("none reported"); a temp name shadows main's
            store.conn.execute("CREATE TEMP VIEW results AS SELECT *, NULL AS loss FROM main.results")
        return store

    def close(self) -> None:
        self.conn.close()

    def transaction(self):
        """`with store.transaction():` groups writes into one atomic commit."""
        return _Transaction(self.conn)

    # --- metadata ---------------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {row["key"]: json.loads(row["value"]) for row in self.conn.execute("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # --- trials -----------------------------------------------------------------------------

    def add_trial(self, config: dict[str, Any], seed: int, job_from: int, job_to: int, *, kind: str = "search",
                  sample_index: int | None = None, parent: int | None = None) -> int:
        """A new trial, queued with its first job (so a crash before it starts still knows what to run)."""
        now = time.time()
        cur = self.conn.execute(
            "INSERT INTO trials (kind, sample_index, parent, config, seed, state, job_from, job_to, created, updated) "
            "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
            (kind, sample_index, parent, json.dumps(config), int(seed), job_from, job_to, now, now))
        return int(cur.lastrowid)

    def add_proposal(self, trial_id: int, sampler: str, seen: int, pending: list[tuple[int, int]],
                     info: dict[str, Any]) -> None:
        self.conn.execute("INSERT INTO proposals (trial_id, sampler, seen, pending, info) VALUES (?, ?, ?, ?, ?)",
                          (trial_id, sampler, int(seen), json.dumps([list(p) for p in pending]), json.dumps(info)))

    def proposals(self) -> list[ProposalRecord]:
        rows = self.conn.execute("SELECT * FROM proposals ORDER BY trial_id")
        return [ProposalRecord(r["trial_id"], r["sampler"], r["seen"], [tuple(p) for p in json.loads(r["pending"])],
                               json.loads(r["info"])) for r in rows]

    def last_seq(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM results").fetchone()[0])

    def update_trial(self, trial_id: int, **fields: Any) -> None:
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"unknown trial state {fields['state']!r}")
        if "metric" in fields:
            fields["metric"] = _to_sql(fields["metric"])
        fields["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE trials SET {cols} WHERE id = ?", (*fields.values(), trial_id))

    def start_job(self, trial_id: int, from_resource: int, to_resource: int, worker: str, checkpoint: str) -> None:
        self.update_trial(trial_id, state="running", job_from=from_resource, job_to=to_resource, worker=worker,
                          checkpoint=checkpoint, heartbeat=time.time())

    def heartbeat(self, trial_id: int) -> None:
        self.conn.execute("UPDATE trials SET heartbeat = ? WHERE id = ?", (time.time(), trial_id))

    def record(self, trial_id: int, resource: int, metric: float, source: str, loss: float | None = None) -> None:
        """Append a reported metric (and the validation loss reported with it, if any); `source`
        is 'report' (mid-job), 'result' (job end) or 'error' (a failed job, NaN: samplers learn
        from failures too)."""
        now = time.time()
        self.conn.execute("INSERT INTO results (trial_id, resource, metric, time, source, loss) "
                          "VALUES (?, ?, ?, ?, ?, ?)", (trial_id, int(resource), _to_sql(metric), now, source,
                                                        _to_sql(loss)))

    def trial(self, trial_id: int) -> TrialRecord:
        rows = self._trials("WHERE id = ?", (trial_id,), trial_id)
        if not rows:
            raise KeyError(trial_id)
        return rows[0]

    def trials(self, kind: str | None = None) -> list[TrialRecord]:
        return self._trials("WHERE kind = ?", (kind,)) if kind else self._trials("", ())

    def _trials(self, where: str, args: tuple, trial_id: int | None = None) -> list[TrialRecord]:
        out = []
        for row in self.conn.execute(f"SELECT * FROM trials {where} ORDER BY id", args):
            d = dict(row)
            d["config"] = current_names(json.loads(d["config"]))
            out.append(TrialRecord(**d))
        by_id = {t.id: t for t in out}
        for r in self.results(trial_id, source="result"):
            if r.trial_id in by_id:
                by_id[r.trial_id].rung_metrics.setdefault(r.resource, r.metric)
        return out

    def count(self, kind: str = "search") -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM trials WHERE kind = ?", (kind,)).fetchone()[0])

    def results(self, trial_id: int | None = None, source: str | None = None,
                upto: int | None = None) -> list[ResultRecord]:
        """Recorded results in arrival order; `upto`: only those with seq <= upto."""
        clauses, args = [], []
        if upto is not None:
            clauses.append("seq <= ?")
            args.append(upto)
        if trial_id is not None:
            clauses.append("trial_id = ?")
            args.append(trial_id)
        if source is not None:
            clauses.append("source = ?")
            args.append(source)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self.conn.execute(f"SELECT * FROM results {where} ORDER BY seq", args)
        return [ResultRecord(r["seq"], r["trial_id"], r["resource"], _from_sql(r["metric"]), r["time"], r["source"],
                             _from_sql(r["loss"])) for r in rows]


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
