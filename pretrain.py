#!/usr/bin/env python
"""Pretrain ALBERT (MLM + sentence-order prediction): python pretrain.py --corpus wiki [--preset tiny] [--output-dir runs/pt]

Several GPUs or nodes: torchrun --nproc_per_node 8 pretrain.py --corpus wiki --output-dir runs/pt ...
"""
import time

STARTED = time.time()  # a --time-budget counts from here: imports and data loading are part of the run

from albert.errors import cli_main  # noqa: E402
from albert.pretrain import HELP, PretrainArgs, defaults_table, run  # noqa: E402
from albert.runconfig import parse_recipe_args  # noqa: E402


@cli_main
def main() -> int:
    args, resume = parse_recipe_args("pretrain.py", __doc__, PretrainArgs, HELP, epilog=defaults_table(),
                                     title="pretraining options")
    results = run(args, resume=resume, started=STARTED)
    if results:
        print(f"pretraining done: {results.get('steps')} steps; final model in {results.get('output_dir')}/final")
    return 0


if __name__ == "__main__":
    main()
