#!/usr/bin/env python
"""Fine-tune ALBERT on a task: python finetune.py --task ner [--model DIR | --preset tiny] [--output-dir runs/ner]"""
from albert.errors import cli_main
from albert.finetune import HELP, FinetuneArgs, defaults_table, run
from albert.runconfig import parse_recipe_args


@cli_main
def main() -> int:
    args, resume = parse_recipe_args("finetune.py", __doc__, FinetuneArgs, HELP, epilog=defaults_table(),
                                     title="fine-tuning options")
    results = run(args, resume=resume)
    best = results["best"]
    print(f"{results['task']}: best {results['main_metric']} = {best.get(results['main_metric'])}; "
          f"results in {results.get('output_dir', args.output_dir)}/results.json")
    return 0


if __name__ == "__main__":
    main()
