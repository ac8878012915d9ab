"""bench/gpu_check.py: the time boxes and records (quick), and the whole dry run on CPU (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import gpu_check  # noqa: E402

DATA = Path(os.environ.get("ALBERT_DATA", REPO.parent / "shared" / "data"))


def test_sections_are_time_boxed_and_recorded_as_they_finish(tmp_path):
    c = gpu_check.Check(tmp_path / "out", tmp_path / "work", tmp_path / "prepared", dry=True, budget=12)

    def quick(c):
        run = c.python("hello", ["-c", "print('SUMMARY hello 1.5x'); print('more output')"], 30)
        return {"headline": "said hello"}, [run]

    def overruns(c):
        return {}, [c.python("sleeper", ["-c", "import time; time.sleep(60)"], 2)]

    def broken(c):
        raise ValueError("a bug in the section")

    def late(c):
        return {}, [c.python("late", ["-c", "pass"], 30)]

    sections = [("quick", quick), ("overruns", overruns), ("broken", broken)]
    gpu_check.run_sections(c, sections)
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [r["section"] for r in rows] == ["quick", "overruns", "broken"]
    assert rows[0]["status"] == "ok" and rows[0]["runs"][0]["summary"] == ["SUMMARY hello 1.5x"]
    assert rows[1]["status"].startswith("sleeper: cut after") and rows[1]["seconds"] < 10
    assert rows[2]["status"] == "error: ValueError: a bug in the section"
    # Past the budget, what is left is skipped and recorded as such.
    c.deadline = 0.0
    gpu_check.run_sections(c, [("late", late)])
    last = json.loads((tmp_path / "out" / "results.jsonl").read_text().splitlines()[-1])
    assert last == {**last, "section": "late", "status": "skipped: no time left"}
    table = (tmp_path / "out" / "summary.txt").read_text()
    assert "said hello" in table and "cut after" in table and "skipped: no time left" in table
    log = (tmp_path / "out" / "log.txt").read_text()
    assert "===== hello: ok" in log and "more output" in log
    with tarfile.open(tmp_path / "out" / "details.tar.gz") as tar:
        names = tar.getnames()
    assert {"details/quick.json", "details/overruns.json", "logs/hello.log", "logs/sleeper.log"} <= set(names)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "wiki" / "wiki-valid.txt.gz").is_file(), reason="needs $ALBERT_DATA")
def test_dry_run_exercises_every_section(tmp_path):
    # Every section end to end on the CPU with tiny shapes: about 6 minutes on 2 busy cores.
    r = subprocess.run([sys.executable, "bench/gpu_check.py", "--dry-run", "--out", str(tmp_path / "out"),
                        "--work", str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True, timeout=1500,
                       env={**os.environ, "ALBERT_DATA": str(DATA), "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rows = {json.loads(line)["section"]: json.loads(line)
            for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()}
    assert list(rows) == [name for name, _ in gpu_check.SECTIONS]
    assert {name: row["status"] for name, row in rows.items()} == {name: "ok" for name in rows}
    assert r.stdout.rstrip().splitlines()[-1].startswith("device cpu, dry run")  # the table, printed last
    figures = {name: row["figures"] for name, row in rows.items()}
    assert figures["environment"]["datasets_import"] == "ok"
    assert {(x["kind"], x["seq"]) for x in figures["model_throughput"]["records"]} >= {("train", 32), ("infer", 64)}
    assert figures["pretrain"]["curve_points"] >= 3 and figures["pretrain"]["results"]["steps"] == 6
    assert len(figures["finetune_downstream"]["runs"]) == 4
    assert figures["tune"]["trials"] == 2
    assert {x["run"] for x in figures["fast_paths"]["rows"]} == {"fast_paths"}
    assert {x["run"] for x in figures["compile"]["rows"]} == {"compile", "cuda_graphs"}
    assert figures["profile"]["step_ms"] > 0 and figures["profile"]["top"]
