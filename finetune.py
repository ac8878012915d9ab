#!/usr/bin/env python
"""Fine-tune ALBERT on a task: python finetune.py --task ner [--model DIR | --preset tiny] [--output-dir runs/ner]"""
import time

STARTED = time.time()  # a --time-budget counts from here: imports and data loading are part of the run

from albert.errors import cli_main  # noqa: E402
from albert.finetune import HELP, FinetuneArgs, defaults_table, run  # noqa: E402
from albert.runconfig import parse_recipe_args  # noqa: E402


@cli_main
def main() -> int:
    args, resume = parse_recipe_args("finetune.py", __doc__, FinetuneArgs, HELP, epilog=defaults_table(),
                                     title="fine-tuning options")
    results = run(args, resume=resume, started=STARTED)
    best = results["best"]
    print(f"{results['task']}: best {results['main_metric']} = {best.get(results['main_metric'])}; "
          f"results in {results.get('output_dir', args.output_dir)}/results.json")
    return 0


if __name__ == "__main__":
    main()
