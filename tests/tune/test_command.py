"""tune.py's options at the command line: every refusal is one line, exit 2, before anything is
written; --resume applies what may change and refuses, in one line, what would change the search."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from albert.tune.sweep import synthetic
from albert.tune.sweep.storage import Storage
from albert.tune.sweep.run import SweepSettings, run_sweep

REPO = Path(__file__).resolve().parents[2]


def tune(*args, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "tune.py"), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


REFUSALS = [
    (["--sampler", "tpe"], "--sampler must be one of random, gp, got 'tpe'"),
    # Every number tune.py takes (issue 28: --eta 0 was a ZeroDivisionError, computed before checked).
    (["--eta", "0"], "--eta must be an integer >= 2, got 0"),
    (["--eta", "1"], "--eta must be an integer >= 2, got 1"),
    (["--budget", "0"], "--budget must be a positive number of configurations, got 0"),
    (["--min-resource", "0"], "--min-resource must be between 1 and --max-resource 1000, got 0"),
    (["--min-resource", "50", "--max-resource", "10"], "--min-resource must be between 1 and --max-resource 10"),
    (["--max-resource", "0"], "--max-resource must be >= 1 step, got 0"),
    (["--time-budget", "-5"], "--time-budget must be positive seconds, got -5.0"),
    (["--trials-per-gpu", "0"], "--trials-per-gpu must be >= 1, got 0"),
    (["--confirm-top", "-1"], "--confirm-top must be >= 0, got -1"),
    (["--confirm-top", "2"], "--confirm-top needs --confirm-seeds >= 1"),
    (["--seed", "-1"], "--seed must be in [0, 2^32), got -1"),
    (["--max-seq-length", "4"], "--max-seq-length must be >= 8, got 4"),
    (["--max-train-samples", "0"], "--max-train-samples must be >= 1"),
    (["--max-eval-samples", "0"], "--max-eval-samples must be >= 1, got 0"),
    (["--sampler", "gp", "--acquisition", "eii"], "--acquisition must be one of ei, pi, ucb, got 'eii'"),
    (["--sampler", "gp", "--initial-trials", "0"], "--initial-trials must be a positive integer, got 0"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--device", "tpu"], "--device must be cpu, cuda or auto, got 'tpu'"),
    (["--space", '{"hidden_size": [64, 128]}', "--model", "{tmp}/no-model"],
     "--space: hidden_size: a --model checkpoint has its own architecture"),
    (["--space", '{"max_steps": {"type": "int", "low": 10, "high": 20}}'],
     "--space: max_steps is the resource --scheduler asha allocates"),
    (["--space", '{"num_attention_heads": [3, 5]}'],
     "no valid configuration in 100 draws (the last: num_attention_heads"),
    (["--sampler", "gp", "--warm-start", "{tmp}/earlier", "{tmp}/nowhere"], "nowhere: not a sweep directory (no sweep.db)"),
    (["--warm-start", "{tmp}", "--backend", "ray"], "--warm-start works with --backend local only"),
]

# tune.py once per case, as a user runs it, but forked from one interpreter that has imported it
# already: the same entry point, options and exit path, without 25 interpreter starts.
_FORKED_CLI = """
import json, os, sys
sys.path.insert(0, os.getcwd())
import tune
results = []
for i, argv in enumerate(json.loads(sys.argv[1])):
    err = os.path.join(sys.argv[2], f"stderr-{i}")
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        sys.argv = ["tune.py", *argv]
        try:
            tune.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    results.append([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), open(err).read()])
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    """(exit code, stderr, output directory) of tune.py for each REFUSALS case."""
    tmp = tmp_path_factory.mktemp("refusals")
    (tmp / "earlier").mkdir()
    Storage.create(tmp / "earlier", {"settings": SweepSettings(sweep_dir="", task="ner").to_dict(),
                                     "space": {"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}}).close()
    argvs = []
    for i, (args, _) in enumerate(REFUSALS):
        base = ["--task", "sst2", "--output-dir", str(tmp / f"sweep-{i}"), "--no-progress"]
        if "--model" not in args:
            base += ["--preset", "tiny"]
        argvs.append(base + [str(a).replace("{tmp}", str(tmp)) for a in args])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _FORKED_CLI, json.dumps(argvs), str(tmp)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return [(code, stderr, tmp / f"sweep-{i}") for i, (code, stderr) in enumerate(results)]


@pytest.mark.parametrize("case", range(len(REFUSALS)), ids=[m for _, m in REFUSALS])
def test_refused_before_anything_is_written(refusals, case):
    code, stderr, out = refusals[case]
    line = one_error_line(subprocess.CompletedProcess([], code, "", stderr))
    assert REFUSALS[case][1] in line, line
    assert not out.exists()  # so the corrected command just works, no "already holds a sweep"


def test_a_refusal_from_a_fresh_interpreter(tmp_path):
    """One case as a plain process too: nothing the forked ones share makes the refusal."""
    out = tmp_path / "sweep"
    line = one_error_line(tune("--task", "sst2", "--preset", "tiny", "--output-dir", out, "--no-progress",
                               "--eta", "1"))
    assert "--eta must be an integer >= 2, got 1" in line
    assert not out.exists()


@pytest.fixture()
def finished_sweep(tmp_path):
    settings = SweepSettings(sweep_dir=str(tmp_path / "sweep"), task="rte", objective=synthetic.curve, budget=4,
                             max_resource=3, eta=3,
                             progress=False, fixed={"synthetic_sleep_ms": 0})
    run_sweep(settings)
    return settings


def test_resume_refuses_search_changes_in_one_line(finished_sweep):
    result = tune("--resume", finished_sweep.sweep_dir, "--sampler", "gp", "--seed", "3", "--scheduler", "random",
                  "--space", '{"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-4}}', "--no-progress")
    line = one_error_line(result)
    for difference in ("sampler 'random', not 'gp'", "seed 0, not 3", "scheduler 'asha', not 'random'",
                       "space {"):
        assert difference in line, line
    assert "cannot change on --resume" in line
    store = Storage.open(finished_sweep.sweep_dir)
    assert store.count() == 4  # nothing ran
    store.close()


def test_resume_applies_budget_and_workers_and_says_so(finished_sweep):
    result = tune("--resume", finished_sweep.sweep_dir, "--budget", "6", "--workers", "2", "--sampler", "random",
                  "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr and "budget 4 -> 6, workers 1 -> 2" in result.stderr
    summary = json.loads((Path(finished_sweep.sweep_dir) / "summary.json").read_text())
    assert summary["tried"] == 6 and summary["budget"] == 6
    store = Storage.open(finished_sweep.sweep_dir)
    assert store.meta()["settings"]["workers"] == 2 and store.count() == 6
    store.close()


# --- defaults: task, model, sweep directory, search space (issue 11) ----------------------------

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A user's working directory: a pretraining run's final/ (a micro model of 128 positions, so
    a task's default max_seq_length must be cut to fit) and made-up CoNLL and SST-2 data."""
    import torch

    from albert.config import preset
    from albert.model import AlbertForPreTraining
    from albert.tokenizer import train_tokenizer
    from synthetic_text import conll_text, prose, sst2_tsv

    root = tmp_path_factory.mktemp("user")
    for task, named in {"ner": {"train.txt": conll_text(40, 1), "valid.txt": conll_text(12, 2)},
                        "sst2": {"train.tsv": sst2_tsv(40, 1), "dev.tsv": sst2_tsv(12, 2)}}.items():
        (root / "data" / task).mkdir(parents=True)
        for name, text in named.items():
            (root / "data" / task / name).write_text(text)
    tok = train_tokenizer(prose(200, 0).split("\n\n"), root / "spm", vocab_size=300)
    final = root / "runs" / "pretrain-20260101-000000" / "final"
    torch.manual_seed(0)
    AlbertForPreTraining(preset("micro", vocab_size=tok.vocab_size, max_position_embeddings=128)).save_pretrained(final)
    tok.save(final)
    return root


def quick(workdir, *args):
    """A sweep small enough for a test: two trials of two steps on the made-up data."""
    return tune("--budget", 2, "--max-resource", 2, "--eta", 2, "--no-progress", *args, cwd=workdir)


def test_tune_runs_as_written_with_default_task_model_and_directory(workdir, tmp_path, monkeypatch):
    monkeypatch.setenv("ALBERT_CACHE", str(tmp_path / "cache"))
    first = quick(workdir, "--data-dir", workdir / "data" / "ner")
    second = quick(workdir, "--data-dir", workdir / "data" / "ner")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    final = workdir / "runs" / "pretrain-20260101-000000" / "final"
    assert "no --task: tuning ner" in first.stderr
    assert "starting from runs/pretrain-20260101-000000/final, the newest pretraining run" in first.stderr
    # The micro model is pretrained and small: lr around finetune_lr's default for its size.
    assert "search space: lr 0.0001..0.003 log-uniform (around 0.001: a pretrained model of hidden size 32)" \
        in first.stderr
    dirs = [line.split()[2] for r in (first, second) for line in r.stderr.splitlines()
            if line.startswith("sweep directory: ")]
    assert len(dirs) == 2 and dirs[0] != dirs[1] and all(d.startswith("runs/tune-ner-") for d in dirs)
    for d in dirs:  # a second sweep never clobbers the first
        summary = json.loads((workdir / d / "summary.json").read_text())
        assert summary["task"] == "ner" and summary["metric"] == "f1" and summary["tried"] == 2
        header = (workdir / d / "trials.csv").read_text().splitlines()[0].split(",")
        assert "f1@1" in header and "f1@2" in header and "f1" in header and not any("metric" in h for h in header)
        trial = json.loads((workdir / d / "best" / "config.json").read_text())["args"]
        assert trial["model"] == str(final) and trial["max_seq_length"] == 128  # cut to the model's positions
    assert "best f1 " in first.stdout


def test_no_local_run_and_no_hub_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, str(REPO / "tune.py"), "--budget", "2"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    line = one_error_line(result)
    assert "pretrain.py --corpus wiki" in line and "--preset tiny" in line
    assert not (tmp_path / "runs").exists()  # no sweep directory claimed for a sweep that cannot start


@pytest.mark.parametrize("where", ["file", "under_file", "read_only"])
def test_unusable_output_path_is_one_line_and_leaves_nothing(tmp_path, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    if where == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        out = tmp_path / "ro" / "sweep"
    else:
        out = blocker if where == "file" else blocker / "sweep"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    line = one_error_line(tune("--task", "sst2", "--preset", "tiny", "--output-dir", out, "--no-progress"))
    assert str(out) in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert blocker.read_text() == "keep me"


def test_diverged_trials_are_failed_not_scores_and_the_sweep_goes_on(workdir, tmp_path):
    """Issue 12: a trial whose run never had a finite step (finetune raises TrainingDiverged) is
    recorded as failed with the reason; three of them do not stop the sweep as a broken setting would."""
    sweep = tmp_path / "sweep"
    result = tune("--task", "sst2", "--model", workdir / "runs" / "pretrain-20260101-000000" / "final",
                  "--data-dir", workdir / "data" / "sst2", "--output-dir", sweep, "--budget", 3, "--max-resource", 3,
                  "--scheduler", "random", "--space", '{"lr": {"type": "loguniform", "low": 1e30, "high": 1e31}}',
                  "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((sweep / "trials.csv").read_text().splitlines()))
    assert [r["state"] for r in rows] == ["failed"] * 3
    assert all(r["error"].startswith("diverged: training diverged") and r["accuracy"] == "" for r in rows)
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["best"] is None and summary["states"] == {"failed": 3}


@pytest.mark.parametrize("max_resource, rungs", [(1000, [112, 336, 1000]), (100, [12, 36, 100]),
                                                  (900, [100, 300, 900]), (2, [1, 2])])
def test_the_default_rungs_are_three_and_end_at_a_full_training(max_resource, rungs):
    """The first rung is max_resource / eta^2 rounded up: rounded down, --max-resource 1000 gave
    rungs at 111, 333, 999 and a fourth of one step at 1000."""
    from albert.tune.asha import make_rungs
    from albert.tune.command import settings_from

    settings = settings_from({"task": "ner", "preset": "tiny", "max_resource": max_resource, "device": "cpu"})
    assert make_rungs(settings.min_resource, settings.max_resource, settings.eta) == rungs


@pytest.mark.parametrize("damage", ["truncated", "garbage_in_the_middle"])
def test_resume_of_a_damaged_sweep_db_is_one_line(finished_sweep, damage):
    """Issue 28: a sweep.db cut short or overwritten in the middle was a sqlite3.DatabaseError
    traceback; it is one line naming the file and what to do, exit 2, and the file is left as found."""
    db = Path(finished_sweep.sweep_dir) / "sweep.db"
    data = db.read_bytes()
    assert len(data) >= 4 * 4096  # several pages: the damage below is past the header
    if damage == "truncated":
        data = data[: len(data) // 2 + 100]
    else:
        middle = (len(data) // 4096 // 2) * 4096
        data = data[:middle] + bytes(range(256)) * 16 + data[middle + 4096:]
    db.write_bytes(data)
    line = one_error_line(tune("--resume", finished_sweep.sweep_dir, "--no-progress"))
    assert f"{db}: damaged, not a readable sweep database" in line and "new --output-dir" in line, line
    assert db.read_bytes() == data
