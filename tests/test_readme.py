"""README.md is a contract: every command in its ```bash blocks runs here, in the README's order,
in one scratch directory (so `runs/...` written by one command is read by the next), with only
size-limiting options appended (steps, samples, budget, vocabulary). Each must exit 0 and leave
the files it promises. Commands that need what a test machine lacks are listed in SKIPPED with
the reason; a README command that is neither run nor listed fails the test below.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

# Commands the suite cannot run, by a pattern of the command line, with the reason.
SKIPPED: dict[str, str] = {
    r"^pip install": "the install itself: .ci/run installs the package the same way before the suite runs",
    r"^python -m pytest": "the suite that runs this test",
    r"^ray (start|get-auth-token)": "sets up a Ray cluster of several machines (two nodes with token "
                                    "authentication on one machine: tests/tune/test_ray_real.py, slow)",
    r"^export RAY_": "points at a Ray cluster",
    r"--model albert-base-v2": "downloads albert-base-v2 from the Hugging Face hub (no network here)",
    r"^torchrun --nproc_per_node 8": "needs 8 GPUs (two CPU processes under torchrun are tested in tests/train)",
}

# Appended to every command of a script: they bound its size and change nothing else. A budgeted
# command gets a shorter budget instead of STEPS (--max-steps beside --time-budget is refused).
STEPS = ["--max-steps", "4"]
PRETRAIN_SIZE = ["--max-docs", "60", "--vocab-size", "400", "--tokenizer-sample", "3000", "--eval-examples", "16",
                 "--no-progress"]
FINETUNE_SIZE = ["--max-train-samples", "64", "--max-eval-samples", "32", "--no-progress"]
TUNE_SIZE = ["--budget", "2", "--max-resource", "4", "--max-train-samples", "64", "--max-eval-samples", "32"]
# Long enough for the set-up a budget counts (vocabulary, examples, probe) with the other test
# process busy on the second core.
BUDGET = {"pretrain.py": "60s", "finetune.py": "45s"}


def readme_commands(text: str) -> list[str]:
    """The command lines of the ```bash blocks, in order: comments dropped, `\\` continuations joined."""
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        pending = ""
        for line in block.splitlines():
            line = pending + re.sub(r"\s+#.*$", "", line).strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1].strip() + " "
                continue
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIPPED.items() if re.search(pattern, command)), None)


def sized(argv: list[str]) -> list[str]:
    """The command with the size-limiting options for its script appended (the last occurrence of
    an option wins in argparse, so an appended --budget or --max-steps replaces the README's)."""
    script = Path(argv[1]).name
    length = ["--time-budget", BUDGET[script]] if "--time-budget" in argv else STEPS
    if script == "pretrain.py":
        return argv + PRETRAIN_SIZE + length
    if script == "finetune.py":
        return argv + FINETUNE_SIZE + (["--vocab-size", "400"] if "--preset" in argv else []) + length
    if script == "tune.py":
        if "--resume" in argv:  # the search is fixed by the sweep; only its budget may grow
            return argv + ["--budget", "3"]
        return argv + TUNE_SIZE
    return argv


def output_dir(argv: list[str], cwd: Path) -> Path:
    """Where the command wrote: --output-dir, --resume's directory, or the newest default run directory."""
    for flag in ("--output-dir", "--resume"):
        if flag in argv and argv.index(flag) + 1 < len(argv) and not argv[argv.index(flag) + 1].startswith("-"):
            return cwd / argv[argv.index(flag) + 1]
    kind = {"pretrain.py": "pretrain-", "finetune.py": "finetune-", "tune.py": "tune-"}[Path(argv[1]).name]
    runs = sorted((cwd / "runs").glob(kind + "*"), key=lambda p: p.stat().st_mtime)
    assert runs, f"no runs/{kind}* directory after {shlex.join(argv)}"
    return runs[-1]


PROMISED = {"pretrain.py": ["final/model.safetensors", "final/spiece.model", "config.json"],
            "finetune.py": ["results.json", "config.json", "best/model.safetensors"],
            "train.py": ["results.json", "config.json"],
            "tune.py": ["summary.json", "trials.csv", "best/config.json"]}

COMMANDS = readme_commands(README.read_text())


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    for command in COMMANDS:
        runnable = command.startswith("python ") and command.split()[1] in PROMISED
        assert runnable or skip_reason(command), f"README command neither run by this test nor skipped: {command}"
    assert sum(1 for c in COMMANDS if not skip_reason(c)) >= 10, "the README lost its examples"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    data = os.environ.get("ALBERT_DATA")
    if not data or not (Path(data) / "conll2003").is_dir():
        pytest.skip("the README's commands read $ALBERT_DATA (conll2003, glue, wiki); it is not set here")
    return tmp_path_factory.mktemp("readme")


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{i:02d}" for i in range(len(COMMANDS))])
def test_readme_command(command: str, workdir: Path, tmp_path_factory):
    why = skip_reason(command)
    if why:
        pytest.skip(why)
    argv = shlex.split(command)
    assert argv[0] == "python", command
    argv = sized([sys.executable, str(REPO / argv[1]), *argv[2:]])
    env = {**os.environ, "ALBERT_CACHE": str(workdir / ".cache"), "PYTHONPATH": str(REPO)}
    done = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stderr[-3000:]}"
    out = output_dir(argv, workdir)
    for name in PROMISED[Path(argv[1]).name]:
        assert (out / name).exists(), f"{command}: {out / name} is missing"
    source = (workdir / argv[2]).parent
    if Path(argv[1]).name == "train.py" and source.name != "best":
        # The README says it repeats the run: the same losses, step by step. (A sweep's best/ was
        # trained by a worker with its own thread count, which changes the sums' order.)
        assert losses(out / "log.jsonl") == losses(source / "log.jsonl") != []


def losses(log: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [(row["step"], row["loss"]) for row in rows if "loss" in row and "step" in row]
