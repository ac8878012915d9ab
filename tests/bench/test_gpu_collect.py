"""bench/gpu_collect.py: a gpu_check.py call's files -> bench/results/gpu-<card>-<date>.json."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import gpu_check  # noqa: E402
import gpu_collect  # noqa: E402


def test_record_from_a_check_folder(tmp_path, capsys):
    c = gpu_check.Check(tmp_path / "out", tmp_path / "work", tmp_path / "prepared", dry=True, budget=60)

    def environment(c):
        return {"gpu": "NVIDIA H100 80GB HBM3", "headline": "H100"}, []

    def bench(c):
        out = c.work / "bench.json"
        out.write_text(json.dumps({"records": [{"ratio": 2.05}]}))
        gpu_check.keep(c, out, "bench_model.json")
        return {"headline": "2.05x"}, [c.python("bench", ["-c", "print('SUMMARY 2.05x')"], 30)]

    gpu_check.run_sections(c, [("environment", environment), ("model_throughput", bench)])
    capsys.readouterr()
    assert gpu_collect.main([str(tmp_path / "out"), "--date", "2026-11-28", "--dest", str(tmp_path / "results")]) == 0
    path = tmp_path / "results" / "gpu-h100-2026-11-28.json"
    assert capsys.readouterr().out.splitlines()[0] == str(path)
    record = json.loads(path.read_text())
    assert record["card"] == "h100" and record["date"] == "2026-11-28" and record["dry_run"] is True
    assert [s["section"] for s in record["sections"]] == ["environment", "model_throughput"]
    assert record["sections"][1]["runs"][0]["summary"] == ["SUMMARY 2.05x"]
    # The runs' own files come along; the section rows are not repeated among them.
    assert record["details"] == {"bench_model.json": {"records": [{"ratio": 2.05}]}}
    assert "2.05x" in record["summary"]
    assert not list((tmp_path / "results").glob("*.tmp"))
    # The same call collected again keeps its file; another call of the day gets the next one.
    assert gpu_collect.main([str(tmp_path / "out"), "--date", "2026-11-28", "--dest", str(tmp_path / "results")]) == 0
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["gpu-h100-2026-11-28.json"]
    gpu_check.run_sections(c, [("late", bench)])
    assert gpu_collect.main([str(tmp_path / "out"), "--date", "2026-11-28", "--dest", str(tmp_path / "results")]) == 0
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["gpu-h100-2026-11-28-2.json",
                                                                        "gpu-h100-2026-11-28.json"]


def test_a_folder_without_results_is_one_line_and_exit_2(tmp_path, capsys):
    assert gpu_collect.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "results.jsonl") in err
