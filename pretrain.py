#!/usr/bin/env python
"""Pretrain ALBERT (MLM + sentence-order prediction): python pretrain.py --corpus wiki --preset tiny --output-dir runs/pt

Several GPUs or nodes: torchrun --nproc_per_node 8 pretrain.py --corpus wiki ...
"""
from albert.errors import cli_main
from albert.pretrain import PretrainArgs, run
from albert.runconfig import parse_recipe_args

HELP = {
    "corpus": "wiki ($ALBERT_DATA/wiki shards, else the hub), wikitext-103, or local text files/dir/glob (.gz ok)",
    "preset": "model shape: tiny, small, base, large, ...",
    "tokenizer": "an existing spiece.model or checkpoint directory instead of training a vocabulary",
    "max_docs": "only the first N documents (quick runs)",
    "batch_size": "rows per micro-batch per process; global batch = batch_size x grad_accum x processes",
    "metric": "the held-out metric that picks best/ (default: loss, lower is better)",
}


@cli_main
def main() -> int:
    args, resume = parse_recipe_args("pretrain.py", __doc__, PretrainArgs, HELP)
    results = run(args, resume=resume)
    if results:
        print(f"pretraining done: {results.get('steps')} steps; final model in {args.output_dir}/final")
    return 0


if __name__ == "__main__":
    main()
