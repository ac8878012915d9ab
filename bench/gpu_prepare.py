"""Prepare, on a CPU, the folder that `bench/gpu_check.py` carries to a bare GPU machine.

  .gpu/wheels/   the Python packages the GPU image lacks (`datasets` and those of its needs
                 not installed there: dill, multiprocess), as Python 3.12 manylinux wheels, at
                 the versions installed here
  .gpu/data/     a slice of $ALBERT_DATA in its own layout: wiki/wiki-00{0..3}.txt.gz (the first
                 documents of each shard) and wiki-valid.txt.gz, conll2003/, glue/SST-2/, with
                 their PROVENANCE.md files (the wiki text is CC BY-SA)
  .gpu/spm/      a SentencePiece vocabulary trained here on the wiki slice, so that the GPU
                 machine spends no time on it
  .gpu/MANIFEST.json   what is there, sizes, versions

`.gpu/` is git-ignored; name it in the device call's `carry`. Everything together stays
under --max-mib (60 MiB: the device call carries at most 64 MiB with the repository).

  python bench/gpu_prepare.py                    # the real slice (about 35 MiB)
  python bench/gpu_prepare.py --tiny --dest DIR  # a few documents and no wheels: gpu_check --dry-run
"""
from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Needed on the GPU machine and not in its image (/work/.library/device/KINDS.md lists what is):
# datasets, and of its requirements dill and multiprocess; pyarrow, pandas, xxhash, fsspec,
# huggingface-hub, requests, tqdm, filelock, pyyaml and packaging are there.
WHEELS = ("datasets", "dill", "multiprocess")
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux1_x86_64")


def _docs(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [d for d in f.read().split("\n\n") if d.strip()]


def _write_docs(path: Path, docs: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write("\n\n".join(docs) + "\n")


def _first_docs(docs: list[str], max_bytes: int) -> list[str]:
    """The first documents of a shard, up to about `max_bytes` of (uncompressed) text."""
    total, out = 0, []
    for d in docs:
        if total >= max_bytes:
            break
        out.append(d)
        total += len(d.encode()) + 2
    return out


def make_data(source: Path, dest: Path, tiny: bool, wiki_mib: float) -> dict:
    """Copy the slice of `source` ($ALBERT_DATA) into `dest` in the same layout."""
    made = {}
    shards = sorted((source / "wiki").glob("wiki-0*.txt.gz"))
    if not shards:
        raise SystemExit(f"{source}/wiki: no wiki-0*.txt.gz shards (set ALBERT_DATA)")
    # Uncompressed text per shard; the shards gzip to about a third.
    per_shard = int((0.05 if tiny else wiki_mib * 3 / len(shards)) * 2**20)
    for shard in shards:
        docs = _first_docs(_docs(shard), per_shard)
        _write_docs(dest / "wiki" / shard.name, docs)
        made[f"wiki/{shard.name}"] = len(docs)
    valid = _first_docs(_docs(source / "wiki" / "wiki-valid.txt.gz"), int((0.02 if tiny else 1.5) * 2**20))
    _write_docs(dest / "wiki" / "wiki-valid.txt.gz", valid)
    made["wiki/wiki-valid.txt.gz"] = len(valid)

    # Whole task files even for a dry run: the benches train an 8000-piece vocabulary on them.
    for rel in ("conll2003/train.txt", "conll2003/valid.txt", "conll2003/test.txt", "glue/SST-2/train.tsv",
                "glue/SST-2/dev.tsv", "wiki/PROVENANCE.md", "conll2003/PROVENANCE.md", "glue/PROVENANCE.md"):
        if (source / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, dest / rel)
            made[rel] = (dest / rel).stat().st_size
    return made


def make_vocabulary(data: Path, dest: Path, vocab_size: int) -> None:
    """The vocabulary `pretrain.py --tokenizer` takes, trained on the slice's training text."""
    from albert.data.corpus import resolve_corpus
    from albert.tokenizer import train_tokenizer

    corpus = resolve_corpus("wiki", data)
    train_tokenizer(itertools.islice(corpus.texts("train"), 300_000), dest, vocab_size=vocab_size, seed=0)


def download_wheels(dest: Path) -> dict[str, str]:
    """pip download the WHEELS at the versions installed here, for CPython 3.12 on manylinux x86_64."""
    dest.mkdir(parents=True, exist_ok=True)
    versions = {name: importlib.metadata.version(name) for name in WHEELS}
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", *itertools.chain.from_iterable(("--platform", p) for p in PIP_PLATFORMS),
           "-d", str(dest), *(f"{n}=={v}" for n, v in versions.items())]
    subprocess.run(cmd, check=True)
    return versions


def size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", default=str(REPO / ".gpu"))
    ap.add_argument("--data", default=os.environ.get("ALBERT_DATA", str(REPO.parent / "shared" / "data")),
                    help="the full data folder to slice (default: $ALBERT_DATA)")
    ap.add_argument("--wiki-mib", type=float, default=24.0, help="compressed wiki text to carry, in MiB")
    ap.add_argument("--vocab-size", type=int, default=30000)
    ap.add_argument("--tiny", action="store_true", help="a few documents, a small vocabulary, no wheels (dry runs)")
    ap.add_argument("--no-wheels", action="store_true")
    ap.add_argument("--max-mib", type=float, default=60.0)
    args = ap.parse_args()
    dest = Path(args.dest)
    if dest.exists():
        shutil.rmtree(dest)
    manifest: dict = {"tiny": args.tiny, "source": str(Path(args.data).resolve())}
    manifest["data"] = make_data(Path(args.data), dest / "data", args.tiny, args.wiki_mib)
    vocab = 400 if args.tiny else args.vocab_size
    make_vocabulary(dest / "data", dest / "spm", vocab)
    manifest["vocab_size"] = vocab
    if not (args.tiny or args.no_wheels):
        manifest["wheels"] = download_wheels(dest / "wheels")
        manifest["wheel_files"] = sorted(p.name for p in (dest / "wheels").glob("*.whl"))
    manifest["mib"] = {part: round(size_mib(dest / part), 2) for part in ("data", "spm", "wheels")
                       if (dest / part).exists()}
    total = size_mib(dest)
    manifest["total_mib"] = round(total, 2)
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2))
    print(json.dumps(manifest, indent=2))
    if total > args.max_mib:
        raise SystemExit(f"{dest}: {total:.1f} MiB, over the {args.max_mib} MiB limit; lower --wiki-mib")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
