#!/usr/bin/env python
"""Fine-tune ALBERT on a task: python finetune.py --task ner --model DIR (or --preset tiny) --output-dir runs/ner"""
from albert.errors import cli_main
from albert.finetune import FinetuneArgs, run
from albert.runconfig import parse_recipe_args

HELP = {
    "task": "ner, sst2, mrpc, rte, cola, stsb, qnli or squad",
    "model": "checkpoint directory (HF format) or hub name",
    "preset": "random initialisation of this shape (tiny, small, base, ...) instead of --model",
    "output_dir": "where the run writes config.json, log.jsonl, results.json, best/ and predictions",
    "data_dir": "task data directory (default: $ALBERT_DATA/<task>, else the hub)",
    "max_train_samples": "use only this many training examples (quick runs)",
    "warmup": "warmup: a ratio of the steps if < 1, else a number of steps",
    "precision": "auto (bf16 on GPUs that support it, fp32 on CPU), fp32, bf16 or fp16",
    "metric": "the evaluation metric that picks best/ (default: the task's main metric)",
    "greater_is_better": "whether a larger --metric is better (default: the task's direction)",
}


@cli_main
def main() -> int:
    args, resume = parse_recipe_args("finetune.py", __doc__, FinetuneArgs, HELP)
    results = run(args, resume=resume)
    best = results["best"]
    print(f"{results['task']}: best {results['main_metric']} = {best.get(results['main_metric'])}; "
          f"results in {args.output_dir}/results.json")
    return 0


if __name__ == "__main__":
    main()
