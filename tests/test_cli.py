"""The four commands on bad input: one line on stderr naming the file, line or option, exit
status 2, no traceback, and nothing half-written in the output directory.

Most cases run the scripts in this process (runpy, as `python finetune.py ...` would, with
cli_main's exit) so that torch is imported once; a few run as real subprocesses to show the
same from the outside.
"""
from __future__ import annotations

import json
import logging
import os
import random
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from albert.tokenizer import train_tokenizer

from synthetic_text import WORDS, conll_text  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def prose_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + "." for _ in range(n)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs good and bad, shared by the cases below."""
    root = tmp_path_factory.mktemp("inputs")
    ner = root / "ner"
    ner.mkdir()
    (ner / "train.txt").write_text(conll_text(60, 1))
    (ner / "valid.txt").write_text(conll_text(20, 2))
    bad_ner = root / "bad-ner"
    bad_ner.mkdir()
    (bad_ner / "train.txt").write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nGerman JJ\n")
    (bad_ner / "valid.txt").write_text("EU NNP B-NP B-ORG\n")
    sst2 = root / "sst2"
    sst2.mkdir()
    (sst2 / "train.tsv").write_bytes("\ufeffsentence\tlabel\tsource\na film\t1\tx\n".encode())
    (sst2 / "dev.tsv").write_text("sentence\tlabel\na film\t1\n")
    squad = root / "squad"
    squad.mkdir()
    (squad / "dev-v1.1.json").write_text('{"version": "1.1", "data": [\n  {"title": "x",,}\n]}\n')

    corpus = root / "small.txt"
    corpus.write_text("\n\n".join(" ".join(prose_lines(4, i)) for i in range(30)) + "\n")
    (root / "blank.txt").write_text("\n \n\t\n\n")

    tok = train_tokenizer(prose_lines(300, 0), root / "spm", vocab_size=200)
    from albert.config import preset
    from albert.model import AlbertForTokenClassification

    model = root / "model-64"  # a checkpoint with only 64 positions
    AlbertForTokenClassification(preset("micro", vocab_size=tok.vocab_size, max_position_embeddings=64,
                                        num_labels=9)).save_pretrained(model)
    tok.save(model)
    no_config = root / "no-config"
    no_config.mkdir()
    tok.save(no_config)
    (no_config / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes())
    bert = root / "bert"
    bert.mkdir()
    tok.save(bert)
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 200, "hidden_size": 16}))
    (bert / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes())
    truncated = root / "truncated"
    truncated.mkdir()
    tok.save(truncated)
    (truncated / "config.json").write_text((model / "config.json").read_text())
    blob = (model / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(blob[: len(blob) // 3])

    (root / "model-config.json").write_text((model / "config.json").read_text())
    (root / "not-json.json").write_text("kind: finetune\n")
    (root / "unknown-option.json").write_text(json.dumps({"kind": "finetune", "args": {"task": "ner", "bogus": 1}}))
    (root / "tune-kind.json").write_text(json.dumps({"kind": "tune", "args": {"task": "sst2"}}))
    (root / "finetune.json").write_text(json.dumps({"kind": "finetune", "args": {"task": "ner", "preset": "micro"}}))
    (root / "space-unknown.json").write_text(json.dumps({"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-4},
                                                         "momentum": [0.9, 0.99]}))
    from albert.tune.sweep.storage import Storage
    Storage.create(root / "rte-sweep", {"settings": {"task": "rte"}}).close()
    return root


def cli(capsys, monkeypatch, script: str, *args: object) -> tuple[int, str, str]:
    """Run `python <script> <args>` in this process: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [script, *map(str, args)])
    logger = logging.getLogger("albert")
    saved = logger.handlers[:]
    logger.handlers.clear()  # cli_main binds a fresh handler to this test's captured stderr
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(str(REPO / script), run_name="__main__")
    finally:
        logger.handlers[:] = saved
    out, err = capsys.readouterr()
    return e.value.code, out, err


def the_error(err: str) -> str:
    """The one error line; other stderr lines may only be our one-line log messages."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:") or ": error: " in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    return errors[0]


def nothing_written(out: Path) -> None:
    """A failed command leaves nothing behind: no config.json or empty log of a run that never
    happened, no lock file, not even the output directory it would have made."""
    assert not out.exists(), sorted(p.name for p in out.iterdir())


# (script, arguments with {placeholders}, what the error line must contain)
CASES = {
    "negative lr": ("finetune.py", "--task ner --preset micro --lr -1", "--lr must be positive, got -1.0"),
    # Issue 12 item 6 and a pass over every numeric option: NaN/inf for every float, ranges.
    "lr inf": ("finetune.py", "--task ner --preset micro --lr inf",
               "argument --lr: --lr: expected a finite number, got 'inf'"),
    "epochs inf": ("finetune.py", "--task ner --preset micro --epochs inf", "--epochs: expected a finite number"),
    "warmup inf": ("finetune.py", "--task ner --preset micro --warmup inf", "--warmup: expected a finite number"),
    "max grad norm nan": ("finetune.py", "--task ner --preset micro --max-grad-norm nan",
                          "--max-grad-norm: expected a finite number, got 'nan'"),
    "dropout overflowing": ("finetune.py", "--task ner --preset micro --dropout 1e999",
                            "--dropout: expected a finite number, got '1e999'"),
    "betas NaN": ("finetune.py", "--task ner --preset micro --betas [NaN,0.9]", "--betas: expected a finite number"),
    "seed -1": ("finetune.py", "--task ner --preset micro --seed -1", "--seed must be in [0, 2^32), got -1"),
    "num workers -1": ("finetune.py", "--task ner --preset micro --num-workers -1", "--num-workers must be >= 0, got -1"),
    "max eval samples 0": ("finetune.py", "--task ner --preset micro --max-eval-samples 0",
                           "--max-eval-samples must be >= 1, got 0"),
    "max steps and epochs": ("finetune.py", "--task ner --preset micro --epochs 1",
                             "give --max-steps or --epochs, not both (got --max-steps 2 and --epochs 1.0)"),
    "betas 1": ("finetune.py", "--task ner --preset micro --betas [0.9,1.0]", "--betas must both be in [0, 1)"),
    "eps 0": ("finetune.py", "--task ner --preset micro --eps 0", "--eps must be positive, got 0.0"),
    "power 0": ("finetune.py", "--task ner --preset micro --power 0", "--power must be positive, got 0.0"),
    "layer lr decay 0": ("finetune.py", "--task ner --preset micro --layer-lr-decay 0",
                         "--layer-lr-decay must be in (0, 1], got 0.0"),
    "pretrain lr nan": ("pretrain.py", "--corpus {files}/small.txt --preset micro --lr nan",
                        "--lr: expected a finite number, got 'nan'"),
    "pretrain short seq prob inf": ("pretrain.py", "--corpus {files}/small.txt --preset micro --short-seq-prob inf",
                                    "--short-seq-prob: expected a finite number"),
    "pretrain dupe factor 0": ("pretrain.py", "--corpus {files}/small.txt --preset micro --dupe-factor 0",
                               "--dupe-factor must be >= 1, got 0"),
    "pretrain eval examples 0": ("pretrain.py", "--corpus {files}/small.txt --preset micro --eval-examples 0",
                                 "--eval-examples must be >= 1, got 0"),
    "pretrain tokenizer sample 0": ("pretrain.py", "--corpus {files}/small.txt --preset micro --tokenizer-sample 0",
                                    "--tokenizer-sample must be >= 1, got 0"),
    "pretrain num proc 0": ("pretrain.py", "--corpus {files}/small.txt --preset micro --num-proc 0",
                            "--num-proc must be >= 1, got 0"),
    "pretrain seed too large": ("pretrain.py", "--corpus {files}/small.txt --preset micro --seed 4294967296",
                                "--seed must be in [0, 2^32), got 4294967296"),
    "pretrain epochs and max steps": ("pretrain.py", "--corpus {files}/small.txt --preset micro --epochs 1",
                                      "give --max-steps or --epochs, not both"),
    "pretrain time budget unit": ("pretrain.py", "--corpus {files}/small.txt --preset micro --time-budget 5w",
                                  "--time-budget: expected a duration such as 45m, 2h, 90s or seconds, got '5w'"),
    "pretrain time budget zero": ("pretrain.py", "--corpus {files}/small.txt --time-budget 0",
                                  "--time-budget: expected a positive duration, got '0'"),
    "finetune time budget": ("finetune.py", "--task ner --preset micro --time-budget 3 minutes",
                             "unrecognized arguments: minutes"),
    "finetune time budget nan": ("finetune.py", "--task ner --preset micro --time-budget nan",
                                 "--time-budget: expected a duration such as 45m, 2h, 90s or seconds, got 'nan'"),
    "time budget and max steps": ("finetune.py", "--task ner --preset micro --time-budget 3m",
                                  "give --time-budget or --max-steps/--epochs, not both"),
    "train.py --set inf": ("train.py", "{files}/finetune.json --set lr=inf", "--set lr: expected a finite number"),
    "train.py --set both lengths": ("train.py", "{files}/finetune.json --output-dir {files}/never --set max_steps=3 "
                                                "--set epochs=1",
                                    "give --max-steps or --epochs, not both"),
    "tune.py float inf": ("tune.py", "--task sst2 --preset micro --time-budget inf",
                          "argument --time-budget: --time-budget: expected a finite number, got 'inf'"),
    "batch size 0": ("finetune.py", "--task ner --preset micro --batch-size 0", "--batch-size must be >= 1, got 0"),
    "max seq length 0": ("finetune.py", "--task ner --preset micro --max-seq-length 0", "--max-seq-length must be >= 8"),
    "unknown preset": ("finetune.py", "--task ner --preset nano", "--preset 'nano' is unknown"),
    "unknown task": ("finetune.py", "--task nerr --preset micro", "unknown task 'nerr'"),
    "lr not a number": ("finetune.py", "--task ner --preset micro --lr fast", "argument --lr: --lr: cannot parse 'fast'"),
    "model and preset": ("finetune.py", "--task ner --preset micro --model {files}/model-64", "not both"),
    "no data dir": ("finetune.py", "--task ner --preset micro --data-dir {files}/nowhere", "nowhere: data directory not found"),
    "CoNLL missing column": ("finetune.py", "--task ner --preset micro --data-dir {files}/bad-ner",
                             "bad-ner/train.txt:4: found 2 columns, but line 1 has 4"),
    "TSV header with BOM": ("finetune.py", "--task sst2 --preset micro --data-dir {files}/sst2",
                            "sst2/train.tsv:1: header is ['sentence', 'label', 'source']"),
    "SQuAD not JSON": ("finetune.py", "--task squad --preset micro --data-dir {files}/squad",
                       "squad/dev-v1.1.json:2: not valid JSON"),
    "model without config.json": ("finetune.py", "--task ner --model {files}/no-config --data-dir {files}/ner",
                                  "no-config: no config.json"),
    "model not ALBERT": ("finetune.py", "--task ner --model {files}/bert --data-dir {files}/ner",
                         "model_type is 'bert', not 'albert'"),
    "model weights truncated": ("finetune.py", "--task ner --model {files}/truncated --data-dir {files}/ner "
                                               "--max-seq-length 32", "corrupt or truncated safetensors file"),
    "seq length above the model's": ("finetune.py", "--task ner --model {files}/model-64 --data-dir {files}/ner "
                                                    "--max-seq-length 128",
                                     "--max-seq-length 128 exceeds the model's max_position_embeddings 64"),
    "corpus missing": ("pretrain.py", "--corpus {files}/nowhere.txt --preset micro",
                       "corpus {files}/nowhere.txt: no such file or directory"),
    "corpus empty": ("pretrain.py", "--corpus {files}/blank.txt --preset micro", "blank.txt (train) is empty"),
    "vocabulary too large": ("pretrain.py", "--corpus {files}/small.txt --preset micro --vocab-size 5000",
                             "cannot support a vocabulary of 5000 pieces"),
    "pretrain unknown preset": ("pretrain.py", "--corpus {files}/small.txt --preset nano", "--preset 'nano' is unknown"),
    "pretrain batch size 0": ("pretrain.py", "--corpus {files}/small.txt --batch-size 0", "--batch-size must be >= 1"),
    "pretrain seq length": ("pretrain.py", "--corpus {files}/small.txt --preset micro --max-seq-length 4096",
                            "--max-seq-length 4096 exceeds the micro preset's max_position_embeddings 128"),
    "model config for train.py": ("train.py", "{files}/model-config.json", "looks like a model config.json"),
    "train.py not JSON": ("train.py", "{files}/not-json.json", "not-json.json: not valid JSON"),
    "train.py unknown option": ("train.py", "{files}/unknown-option.json", "unknown option(s) bogus"),
    "train.py tune config": ("train.py", "{files}/tune-kind.json", "a 'tune' configuration cannot be re-run"),
    "train.py bad --set": ("train.py", "{files}/finetune.json --set lr=fast", "--set lr: cannot parse 'fast'"),
    "space unknown name": ("tune.py", "--task sst2 --preset micro --space {files}/space-unknown.json",
                           "space-unknown.json: key 'momentum': unknown hyperparameter"),
    "space empty range": ("tune.py", ["--task", "sst2", "--preset", "micro", "--space",
                                      '{"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-5}}'],
                          "--space: hyperparameter 'lr': empty range, low 0.0001 >= high 1e-05"),
    "space not JSON": ("tune.py", ["--task", "sst2", "--preset", "micro", "--space", '{"lr": [1e-5,'],
                       "--space: invalid JSON"),
    # Issue 28: a --metric the evaluation does not report was refused at the first evaluation,
    # after a whole epoch, leaving config.json and an empty log.jsonl.
    "metric not ner's": ("finetune.py", "--task ner --preset micro --data-dir {files}/ner --metric accuracy",
                         "--metric 'accuracy': the ner evaluation reports precision, recall, f1, f1_"),
    "metric of an entity type not in the data": ("finetune.py", "--task ner --preset micro --data-dir {files}/ner "
                                                 "--metric f1_DRUG", "--metric 'f1_DRUG': the ner evaluation reports"),
    "metric not pretraining's": ("pretrain.py", "--corpus {files}/small.txt --preset micro --metric f1",
                                 "--metric 'f1': the held-out evaluation reports mlm_loss, mlm_accuracy"),
    "budget 0": ("tune.py", "--task sst2 --preset micro --budget 0", "--budget must be a positive number"),
    "resume another task's sweep": ("tune.py", "--task sst2 --resume {files}/rte-sweep",
                                    "this sweep is for task 'rte', not 'sst2'"),
    "resume no sweep": ("tune.py", "--resume {files}/ner", "no sweep.db; not a sweep directory"),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_exit_2(files, tmp_path, capsys, monkeypatch, name):
    monkeypatch.setenv("ALBERT_CACHE", str(files / "cache"))
    script, args, needle = CASES[name]
    args = args.split() if isinstance(args, str) else args
    args = [a.replace("{files}", str(files)) for a in args]
    out = tmp_path / "out"
    if script in ("finetune.py", "pretrain.py") or (script == "tune.py" and "--resume" not in args):
        args += ["--output-dir", str(out), "--max-steps" if script != "tune.py" else "--max-resource", "2",
                 "--no-progress"]
    code, stdout, err = cli(capsys, monkeypatch, script, *args)
    assert code == 2, (code, err)
    line = the_error(err)
    assert needle.replace("{files}", str(files)) in line, line
    nothing_written(out)


def test_divergence_stops_with_the_last_good_checkpoint(files, tmp_path, capsys, monkeypatch):
    """A learning rate of 1e6 makes every loss after the first update NaN: the run skips steps,
    then exits 2 naming the checkpoint written before the divergence, which it keeps (a checkpoint
    every step: those of the skipped steps must not rotate it away)."""
    from albert.train.checkpoints import CheckpointStore

    monkeypatch.setenv("ALBERT_CACHE", str(files / "cache"))
    out = tmp_path / "run"
    code, _, err = cli(capsys, monkeypatch, "finetune.py", "--task", "ner", "--preset", "micro", "--data-dir",
                       files / "ner", "--vocab-size", "150", "--max-seq-length", "32", "--batch-size", "4",
                       "--lr", "1e6", "--warmup", "0", "--max-steps", "40", "--save-every", "1", "--log-every", "1",
                       "--no-progress", "--output-dir", out)
    assert code == 2
    line = the_error(err)
    assert "training diverged: 10 consecutive steps with a non-finite loss" in line and "lower lr" in line
    store = CheckpointStore(out / "checkpoints", 2, "")
    kept = store.steps()
    assert len(kept) >= 1 and f"the last good checkpoint is {kept[0][1]}." in line
    assert store.verify(kept[0][1]) is None
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    last_finite = max(r["step"] for r in log if r["type"] == "train" and r["loss"] is not None)
    assert kept[0][0] <= last_finite  # written before the first non-finite step, not during the streak
    assert not (out / "results.json").exists() and not (out / "best").exists()


@pytest.mark.parametrize("lr, eval_every, needle", [
    ("1e6", "0", "training diverged: the run ended after 2 consecutive steps with a non-finite loss or gradient "
                 "(of 3 steps, 2 skipped); no checkpoint was written"),
    # the first update overflows float32; the evaluation after it finds out before looking at a metric
    ("1e39", "1", "training diverged: parameter "),
])
def test_a_diverging_run_shorter_than_the_bad_step_limit_fails_without_best(files, tmp_path, capsys, monkeypatch,
                                                                            lr, eval_every, needle):
    """Issue 12: a run shorter than --max-bad-steps used to exit 0 with the diverged weights as
    best/ and a metric that looked real (and the tuner recorded it as a score)."""
    monkeypatch.setenv("ALBERT_CACHE", str(files / "cache"))
    out = tmp_path / "run"
    code, _, err = cli(capsys, monkeypatch, "finetune.py", "--task", "ner", "--preset", "micro", "--data-dir",
                       files / "ner", "--vocab-size", "150", "--max-seq-length", "32", "--batch-size", "4",
                       "--lr", lr, "--warmup", "0", "--max-steps", "3", "--eval-every", eval_every, "--log-every",
                       "1", "--no-progress", "--output-dir", out)
    assert code == 2
    assert the_error(err).startswith(f"error: {needle}"), err
    assert not (out / "best").exists() and not (out / "results.json").exists()
    assert not list(out.glob("predictions*")) and not (out / "checkpoints").exists()


SUBPROCESS = {
    "finetune": (["finetune.py", "--task", "ner", "--preset", "micro", "--data-dir", "{files}/bad-ner",
                  "--output-dir", "{tmp}/ft"], "bad-ner/train.txt:4: found 2 columns"),
    "pretrain": (["pretrain.py", "--corpus", "{files}/nowhere.txt", "--output-dir", "{tmp}/pt"],
                 "nowhere.txt: no such file or directory"),
    "train": (["train.py", "{files}/model-config.json"], "not a run configuration"),
    "metric": (["finetune.py", "--task", "ner", "--preset", "micro", "--data-dir", "{files}/ner", "--metric", "accuracy",
                "--output-dir", "{tmp}/ft-metric"], "--metric 'accuracy': the ner evaluation reports"),
    "tune eta": (["tune.py", "--task", "sst2", "--preset", "micro", "--eta", "0", "--output-dir", "{tmp}/sweep-eta"],
                 "--eta must be an integer >= 2, got 0"),
    "tune": (["tune.py", "--task", "sst2", "--preset", "micro", "--space", "{files}/space-unknown.json",
              "--output-dir", "{tmp}/sweep"], "unknown hyperparameter"),
}


def test_real_processes_exit_2_with_one_line(files, tmp_path):
    """The same, from the outside: four commands started at once, each a real interpreter."""
    env = {**os.environ, "ALBERT_CACHE": str(files / "cache"), "PYTHONPATH": str(REPO)}
    procs = {}
    for name, (argv, _) in SUBPROCESS.items():
        argv = [a.replace("{files}", str(files)).replace("{tmp}", str(tmp_path)) for a in argv]
        procs[name] = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, stderr)
        assert "Traceback" not in stderr and stdout == "", (name, stdout, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and SUBPROCESS[name][1] in lines[0], (name, stderr)
    for sub in ("ft", "pt", "sweep", "ft-metric", "sweep-eta"):
        nothing_written(tmp_path / sub)


def test_the_commands_run_as_written(files, tmp_path, capsys, monkeypatch):
    """Issue 11 item 1 at micro scale: without --output-dir every run gets a new runs/<kind>-<time>
    (a second run never writes over the first); finetune.py without --model starts from the newest
    pretraining run, and cuts the task's max_seq_length to that model's 128 positions."""
    import re

    monkeypatch.setenv("ALBERT_CACHE", str(files / "cache"))
    monkeypatch.chdir(tmp_path)
    dirs = []
    for _ in range(2):
        code, out, err = cli(capsys, monkeypatch, "pretrain.py", "--corpus", files / "small.txt", "--preset", "micro",
                             "--vocab-size", "150", "--max-steps", "2", "--no-progress")
        assert code == 0, err
        dirs.append(re.search(r"output directory: (runs/pretrain-\d{8}-\d{6}(-\d+)?) ", err).group(1))
        assert "recipe: the CPU recipe (measured), for a CPU with" in err
        assert "optimizer adamw lr 0.001" in err and "length: 2 steps" in err
        assert (tmp_path / dirs[-1] / "final" / "config.json").is_file() and f"final model in {dirs[-1]}/final" in out
    assert dirs[0] != dirs[1]
    code, out, err = cli(capsys, monkeypatch, "finetune.py", "--task", "ner", "--data-dir", files / "ner",
                         "--max-steps", "2", "--no-progress")
    assert code == 0, err
    assert f"starting from {dirs[1]}/final, the newest pretraining run in runs/" in err
    assert "note: max_seq_length 128: the task's default 256 cut to the model's max_position_embeddings" in err
    run_dir = re.search(r"output directory: (runs/finetune-ner-\d{8}-\d{6}(-\d+)?) ", err).group(1)
    saved = json.loads((tmp_path / run_dir / "config.json").read_text())["args"]
    assert saved["model"] == str((tmp_path / dirs[1] / "final").resolve())
    assert (saved["max_seq_length"], saved["lr"], saved["warmup"]) == (128, 1e-3, 0.1)
    assert f"results in {run_dir}/results.json" in out


def test_without_a_model_or_the_hub_finetune_says_how_to_start(files, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("offline (a test)")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.setenv("ALBERT_CACHE", str(files / "cache"))
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, monkeypatch, "finetune.py", "--task", "ner", "--data-dir", files / "ner", "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    line = the_error(err)
    assert "no --model or --preset given, no pretraining run in runs/, and albert-base-v2 cannot be fetched" in line
    assert "run `python pretrain.py --corpus wiki` first, or pass --model DIR or --preset tiny" in line
    assert not (tmp_path / "runs").exists()


def test_resume_needs_the_run_to_continue(files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, monkeypatch, "pretrain.py", "--corpus", files / "small.txt", "--resume")
    assert code == 2 and "--resume needs --output-dir: the run to continue" in the_error(err)
    assert not (tmp_path / "runs").exists()


def test_every_file_a_run_writes_follows_the_umask(files, tmp_path):
    """Issue 28: best/model.safetensors and final/model.safetensors were 0600 (safetensors writes
    its own file) while the rest was 0644: a model exported for others could not be read by them.
    Under umask 027 every file is 0640 and every directory 0750."""
    umask = 0o027
    env = {**os.environ, "ALBERT_CACHE": str(files / "cache"), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    runs = {"ft": ["finetune.py", "--task", "ner", "--preset", "micro", "--data-dir", files / "ner", "--vocab-size",
                   "150", "--max-seq-length", "32", "--max-steps", "2", "--eval-every", "1"],
            "pt": ["pretrain.py", "--corpus", files / "small.txt", "--preset", "micro", "--vocab-size", "150",
                   "--max-steps", "2", "--eval-every", "1"]}
    for name, argv in runs.items():
        result = subprocess.run([sys.executable, *map(str, argv), "--no-progress", "--output-dir", tmp_path / name],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                                preexec_fn=lambda: os.umask(umask))
        assert result.returncode == 0, result.stderr
    written = [p for p in tmp_path.rglob("*") if p.name != ".lock"]
    assert tmp_path / "ft" / "best" / "model.safetensors" in written
    assert tmp_path / "pt" / "final" / "model.safetensors" in written
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in written}
    want = {str(p.relative_to(tmp_path)): oct((0o777 if p.is_dir() else 0o666) & ~umask) for p in written}
    assert modes == want


def test_wall_time_after_a_resume_is_the_whole_run(files, tmp_path, capsys, monkeypatch):
    """Issue 28: results.json's wall_time_s after --resume counted only the resumed part. It is
    the run's: the resumed checkpoint's wall time plus this session's."""
    monkeypatch.setenv("ALBERT_CACHE", str(files / "cache"))
    out = tmp_path / "ft"
    common = ["--task", "ner", "--preset", "micro", "--data-dir", files / "ner", "--vocab-size", "150",
              "--max-seq-length", "32", "--schedule-steps", "13", "--eval-every", "12", "--no-progress",
              "--output-dir", out]
    code, _, err = cli(capsys, monkeypatch, "finetune.py", *common, "--max-steps", "12")
    assert code == 0, err
    first = json.loads((out / "results.json").read_text())
    code, _, err = cli(capsys, monkeypatch, "finetune.py", *common, "--max-steps", "13", "--resume")
    assert code == 0, err
    second = json.loads((out / "results.json").read_text())
    assert (first["resumed_from_step"], second["resumed_from_step"], second["steps"]) == (None, 12, 13)
    # 12 steps and an evaluation before the checkpoint, one step after it: without the first
    # session's time the total was a fraction of the first run's.
    assert second["wall_time_s"] > 0.9 * first["wall_time_s"], (first["wall_time_s"], second["wall_time_s"])
