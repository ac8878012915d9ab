"""The record of one `gpu_check.py` device call, as committed: bench/results/gpu-<card>-<date>.json
(-2, -3, ... for a day's later calls on the same card).

  python bench/gpu_collect.py /work/.device/1                    # the folder the call's files came to
  python bench/gpu_collect.py /work/.device/1 --date 2026-11-28 --dest bench/results

Reads results.jsonl (one row per section) and details.tar.gz (each run's own JSON: the model
benchmark's timings, the loss curve, the fine-tunings' results, ...) and writes one JSON file:
card, date, the sections in the order they ran with status, seconds and figures, and the runs'
JSON beside them. Prints the path and the summary table.
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def card_of(rows: list[dict]) -> str:
    """'NVIDIA H200' -> 'h200', 'NVIDIA H100 80GB HBM3' -> 'h100'; 'cpu' for a dry run."""
    env = next((r["figures"] for r in rows if r["section"] == "environment"), {})
    name = env.get("gpu") or "cpu"
    words = [w for w in re.split(r"[\s_-]+", name.lower()) if w and w != "nvidia"]
    return words[0] if words else "gpu"


def details_of(archive: Path, sections: set[str]) -> dict[str, object]:
    """Each details/*.json in the archive but the section rows (results.jsonl holds those)."""
    out: dict[str, object] = {}
    if not archive.is_file():
        return out
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            path = Path(member.name)
            if path.parent.name != "details" or not member.isfile() or path.stem in sections:
                continue
            data = tar.extractfile(member).read().decode(errors="replace")
            out[path.name] = json.loads(data) if path.suffix == ".json" else data
    return out


def collect(folder: Path, date: str) -> dict:
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
    return {"card": card_of(rows), "date": date, "dry_run": any(r.get("dry_run") for r in rows),
            "summary": (folder / "summary.txt").read_text() if (folder / "summary.txt").is_file() else None,
            "sections": rows, "details": details_of(folder / "details.tar.gz", {r["section"] for r in rows})}


def record_path(dest: Path, stem: str, text: str) -> Path:
    """dest/stem.json; a second call of the same card and day goes to stem-2.json, and so on.
    Collecting the same call again rewrites its own file."""
    n = 1
    while True:
        path = dest / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
        if not path.exists() or path.read_text() == text:
            return path
        n += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="the device call's files (results.jsonl, details.tar.gz, summary.txt)")
    ap.add_argument("--date", default=datetime.date.today().isoformat(), help="the run's date (default: today)")
    ap.add_argument("--dest", type=Path, default=REPO / "bench" / "results", help="folder of the record")
    args = ap.parse_args(argv)
    if not (args.folder / "results.jsonl").is_file():
        print(f"error: {args.folder / 'results.jsonl'}: not found (the folder of a gpu_check.py call's files?)",
              file=sys.stderr)
        return 2
    record = collect(args.folder, args.date)
    text = json.dumps(record, indent=1, default=str) + "\n"
    path = record_path(args.dest, f"gpu-{record['card']}-{args.date}", text)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(path)
    print(record["summary"] or "", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
