"""Tokenization throughput: albert's Tokenizer against transformers' AlbertTokenizer and SentencePiece.

All three encode the same lines (every non-empty line of wiki-valid by default) with the same
vocabulary, in the same process, alternately in every repeat; the table gives the median tokens/s
(tokens = ours' ids without [CLS]/[SEP]) and the ratio ours / transformers. Two ways of calling:

  per line   one call per line, as the data pipelines call encode() (albert: encode(line);
             transformers: tokenizer(line)["input_ids"]; sentencepiece: encode(line))
  batch      one call for all lines (albert: encode_batch; transformers: tokenizer(lines);
             sentencepiece: encode(lines, num_threads=N)): the libraries' own threads

SentencePiece gets the lines already preprocessed the ALBERT way (quotes, accents, case: done
before the clock starts, as it cannot do them itself); its ids differ from transformers' on a few
lines (grapheme-cluster normalization, exact score ties) and the count is printed.

  python bench/bench_tokenizer.py                               # trains an 8000-piece wiki vocabulary once
  python bench/bench_tokenizer.py --vocab runs/pt/final --repeats 7
  python bench/bench_tokenizer.py --threads 1                   # the batch rows on one thread

Writes a JSON record (versions, settings, figures) to --out.
"""
from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def wiki_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line for line in f.read().split("\n") if line]


def default_vocabulary(data: Path, cache: Path) -> Path:
    """An 8000-piece vocabulary from the first 20,000 lines of the first wiki shard, made once."""
    from albert.tokenizer import train_tokenizer

    out = cache / "bench_tokenizer" / "wiki-8000"
    if not (out / "tokenizer.json").is_file():
        with gzip.open(data / "wiki" / "wiki-000.txt.gz", "rt", encoding="utf-8") as f:
            paragraphs = list(itertools.islice((line for line in f if line.strip()), 20_000))
        train_tokenizer(paragraphs, out, vocab_size=8000, seed=0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", help="a saved tokenizer directory (spiece.model, tokenizer.json, tokenizer_config.json)")
    ap.add_argument("--text", help="gzip text, one line per input (default: $ALBERT_DATA/wiki/wiki-valid.txt.gz)")
    ap.add_argument("--lines", type=int, help="only the first N non-empty lines")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, help="threads for the batch rows (RAYON_NUM_THREADS and sentencepiece)")
    ap.add_argument("--out", default="bench/results/tokenizer.json")
    args = ap.parse_args()
    if args.threads:  # read by the tokenizers library when its thread pool starts: set before importing it
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)

    import sentencepiece as spm
    import tokenizers
    import transformers

    from albert.tokenizer import Tokenizer

    data = Path(os.environ.get("ALBERT_DATA", "data"))
    cache = Path(os.environ.get("ALBERT_CACHE", Path.home() / ".cache" / "albert"))
    vocab = Path(args.vocab) if args.vocab else default_vocabulary(data, cache)
    lines = wiki_lines(Path(args.text) if args.text else data / "wiki" / "wiki-valid.txt.gz")[:args.lines]

    ours = Tokenizer.load(vocab)
    hf = transformers.AlbertTokenizer.from_pretrained(str(vocab))
    sp = spm.SentencePieceProcessor(model_file=str(vocab / "spiece.model"))
    prepared = [ours.normalize(line) for line in lines]
    threads = args.threads or os.cpu_count() or 1

    runs: dict[str, Callable[[], list[list[int]]]] = {
        "albert per line": lambda: [ours.encode(line) for line in lines],
        "transformers per line": lambda: [hf(line, add_special_tokens=False)["input_ids"] for line in lines],
        "sentencepiece per line": lambda: [sp.encode(line) for line in prepared],
        "albert batch": lambda: ours.encode_batch(lines),
        "transformers batch": lambda: hf(lines, add_special_tokens=False)["input_ids"],
        "sentencepiece batch": lambda: sp.encode(prepared, num_threads=threads),
    }
    results = {name: run() for name, run in runs.items()}  # warm-up, and the ids to compare
    expected = results["transformers batch"]
    mismatches = {name: sum(a != b for a, b in zip(ids, expected)) for name, ids in results.items()}
    n_tokens = sum(map(len, results["albert per line"]))
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():  # alternated, so that drift hits every variant alike
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)

    figures = {}
    print(f"{len(lines)} lines, {n_tokens} tokens, vocabulary {ours.vocab_size} ({vocab}); "
          f"median of {args.repeats}; batch threads {threads}")
    print(f"{'':24} {'tokens/s':>12} {'min s':>8} {'median s':>9} {'lines != transformers':>22}")
    for name, times in seconds.items():
        median = statistics.median(times)
        figures[name] = {"tokens_per_s": n_tokens / median, "median_s": median, "min_s": min(times),
                         "seconds": times, "lines_differing_from_transformers": mismatches[name]}
        print(f"{name:24} {n_tokens / median:12,.0f} {min(times):8.3f} {median:9.3f} {mismatches[name]:22d}")
    for mode in ("per line", "batch"):
        ratio = figures[f"transformers {mode}"]["median_s"] / figures[f"albert {mode}"]["median_s"]
        sp_ratio = figures[f"sentencepiece {mode}"]["median_s"] / figures[f"albert {mode}"]["median_s"]
        figures[f"ratio {mode}"] = {"albert_over_transformers": ratio, "albert_over_sentencepiece": sp_ratio}
        print(f"SUMMARY tokenizer {mode}: albert {figures[f'albert {mode}']['tokens_per_s']:,.0f} tokens/s, "
              f"transformers {figures[f'transformers {mode}']['tokens_per_s']:,.0f}, "
              f"sentencepiece {figures[f'sentencepiece {mode}']['tokens_per_s']:,.0f}; "
              f"albert/transformers {ratio:.2f}x, albert/sentencepiece {sp_ratio:.2f}x")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "batch_threads": threads,
        "versions": {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
                     "sentencepiece": spm.__version__, "python": platform.python_version()},
        "vocab": str(vocab), "vocab_size": ours.vocab_size, "lines": len(lines), "tokens": n_tokens,
        "repeats": args.repeats, "figures": figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
