#!/usr/bin/env python
"""Re-run a saved run configuration: python train.py RUN/config.json [--set lr=3e-5 ...] [--output-dir DIR]"""

from albert.errors import AlbertError, cli_main
from albert.runconfig import UsageParser, apply_overrides, build_args, load_run_config


@cli_main
def main() -> int:
    parser = UsageParser.make("train.py", __doc__)
    parser.add_argument("config", help="a run's config.json (finetune, pretrain or a tuning trial)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one option of the saved configuration, e.g. --set lr=3e-5 (repeatable; the "
                             "keys are the config's args, the options of finetune.py / pretrain.py with underscores)")
    parser.add_argument("--output-dir", help="write the new run here (default: the saved output_dir; a fresh run "
                                             "there needs --set overwrite=true)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in output_dir from its newest checkpoint (default: start afresh)")
    ns = parser.parse_args()
    kind, values = load_run_config(ns.config)
    if ns.output_dir:
        values["output_dir"] = ns.output_dir
    if kind == "finetune":
        from albert.finetune import FinetuneArgs, run
        cls = FinetuneArgs
    elif kind == "pretrain":
        from albert.pretrain import PretrainArgs, run
        cls = PretrainArgs
    else:
        raise AlbertError(f"{ns.config}: a '{kind}' configuration cannot be re-run by train.py; "
                          "use python tune.py --resume <sweep dir>, or a trial's config.json")
    values = apply_overrides(cls, values, ns.set)
    results = run(build_args(cls, values, ns.config), resume=ns.resume)
    print({k: v for k, v in results.items() if k in ("best", "final", "steps")})
    return 0


if __name__ == "__main__":
    main()
