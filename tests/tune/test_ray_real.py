"""`tune.py --backend ray` against the real Ray (a local instance, or two nodes on this machine),
run as a user runs it: the real CLI in a subprocess, the real fine-tuning objective on micro
models and a synthetic SST-2.

Default suite: one GP sweep (ids in suggestion order, a quiet console, best/ reproduced by
train.py) and one random sweep interrupted with Ctrl-C then resumed. Slow: a sweep on a
two-node cluster with token authentication, and the one-line refusal without the token.

Every Ray this file starts is its own (tune.py's local instance ends with the process; the
cluster fixture removes its nodes), on free ports and in Ray's per-session directories, so two
runs of the suite side by side do not meet."""
from __future__ import annotations

import csv
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from albert.tune.sweep.run import trial_seed
from synthetic_text import sentence, sst2_tsv

REPO = Path(__file__).resolve().parents[2]
RAY_NOISE = ("╭", "Trial status", "Tuner.restore", "tensorboard --logdir", "Checkpoint successfully created")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """An SST-2 folder and a 200-piece vocabulary: micro-model trials of a second or two."""
    from albert.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("ray-inputs")
    data = root / "sst2"
    data.mkdir()
    (data / "train.tsv").write_text(sst2_tsv(240, 1))
    (data / "dev.tsv").write_text(sst2_tsv(60, 2))
    rng = random.Random(0)
    train_tokenizer([sentence(rng) for _ in range(400)], root / "spm", vocab_size=200)
    return {"data": data, "spm": root / "spm", "cache": root / "cache"}


def env_for(inputs: dict[str, Path], **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ALBERT_CACHE": str(inputs["cache"]),
            **extra}


def sweep_args(inputs: dict[str, Path], out: Path, *extra: object) -> list[str]:
    return [sys.executable, str(REPO / "tune.py"), "--task", "sst2", "--preset", "micro",
            "--data-dir", str(inputs["data"]), "--tokenizer", str(inputs["spm"]), "--max-seq-length", "32",
            "--eta", "3", "--workers", "2", "--device", "cpu", "--backend", "ray", "--output-dir", str(out),
            *map(str, extra)]


def rows(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "trials.csv") as f:
        return list(csv.DictReader(f))


def assert_quiet(console: str, sweep: Path) -> None:
    """Our lines on the console, Ray's in <sweep>/ray.log."""
    assert "Traceback" not in console, console
    for noise in RAY_NOISE:
        assert noise not in console, console
    assert "[sweep] " in console
    log = (sweep / "ray.log").read_text()
    assert "Checkpoint successfully created" in log and "Ray instance" in log


def test_gp_sweep_on_ray(inputs, tmp_path):
    """Issue 28: `--backend ray --sampler gp` crashed at start (Ray's Searcher.mode is read-only);
    Ray names a searcher's trials with hex ids, which put trials.csv out of suggestion order."""
    out = tmp_path / "gp"
    run = subprocess.run(sweep_args(inputs, out, "--sampler", "gp", "--initial-trials", "2", "--budget", "5",
                                    "--max-resource", "9", "--seed", "3"),
                         env=env_for(inputs), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    console = run.stdout + run.stderr
    assert run.returncode == 0, console
    assert_quiet(console, out)
    assert len(console.splitlines()) <= 25, console
    table = rows(out)
    # Trial k is the k-th suggestion: its training seed is the k-th of the sweep's seed sequence.
    assert [int(r["id"]) for r in table] == [1, 2, 3, 4, 5]
    assert [int(r["seed"]) for r in table] == [trial_seed(3, k) for k in range(5)]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] is True and summary["tried"] == 5 and summary["best"]

    # best/ is reproduced by the command the sweep prints.
    assert f"python train.py {out}/best/config.json" in console
    again = subprocess.run([sys.executable, str(REPO / "train.py"), str(out / "best" / "config.json")],
                           env=env_for(inputs), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    trial = json.loads((out / "best" / "results.json").read_text())["final"]
    retrained = json.loads((out / "best" / "retrain" / "results.json").read_text())["final"]
    assert retrained["accuracy"] == trial["accuracy"] == summary["best"]["metric"]
    assert retrained["loss"] == pytest.approx(trial["loss"], rel=1e-5)


def test_ctrl_c_then_resume_random_sweep_on_ray(inputs, tmp_path):
    """Ctrl-C: exit 130, the trials Ray stopped marked "interrupted", summary not finished, our
    resume command (not Ray's Tuner.restore); --resume then finishes them from their checkpoints."""
    out = tmp_path / "random"
    proc = subprocess.Popen(sweep_args(inputs, out, "--sampler", "random", "--budget", "4",
                                       "--max-resource", "27", "--seed", "1"),
                            env=env_for(inputs), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 300
        while not glob.glob(str(out / "ray" / "*" / "checkpoint_*")):  # a trial has passed its first rung
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    console = stdout + stderr
    assert proc.returncode == 130, console
    assert_quiet(console, out)
    assert stderr.rstrip().endswith(f"interrupted; continue with: python tune.py --resume {out}"), stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] is False and summary["stop_reason"] == "interrupt"
    before = {r["ray_trial"]: r for r in rows(out)}
    stopped = [r for r in before.values() if r["state"] == "interrupted"]
    assert stopped and all(int(r["resource"]) < 27 for r in stopped), before
    assert "pruned" not in summary["states"] or summary["states"]["pruned"] < len(before)

    resumed = subprocess.run([sys.executable, str(REPO / "tune.py"), "--resume", str(out)], env=env_for(inputs),
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_quiet(resumed.stdout + resumed.stderr, out)
    table = rows(out)
    assert [int(r["id"]) for r in table] == [1, 2, 3, 4]
    # Ray's random search counts its trials: ids follow that creation order.
    assert [int(r["ray_trial"].rsplit("_", 1)[1]) for r in table] == [0, 1, 2, 3]
    assert {r["state"] for r in table} <= {"completed", "pruned"}
    assert json.loads((out / "summary.json").read_text())["finished"] is True
    for r in stopped:  # continued from its checkpoint: the rungs it had passed were not re-run
        after = next(t for t in table if t["ray_trial"] == r["ray_trial"])
        assert int(after["resource"]) >= int(r["resource"])
        for rung in (3, 9):
            if r[f"accuracy@{rung}"]:
                assert after[f"accuracy@{rung}"] == r[f"accuracy@{rung}"]


# --- two nodes on this machine ------------------------------------------------------------------

CLUSTER = """
import sys
from ray.cluster_utils import Cluster
# Ports: the GCS's given, the others (dashboard agent included) picked free by Ray.
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "gcs_server_port": int(sys.argv[1]),
                                                        "include_dashboard": False,
                                                        "dashboard_agent_listen_port": None})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.read()  # until the test closes our stdin
cluster.shutdown()
"""


@pytest.fixture
def token_cluster(inputs, tmp_path):
    """A head and a worker node (one CPU each) with token authentication, as the README sets up a
    cluster: RAY_AUTH_MODE=token and the same RAY_AUTH_TOKEN on every node."""
    from spawning import free_port

    token = "albert-test-" + os.urandom(16).hex()
    env = env_for(inputs, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER, str(free_port())], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "cluster.log", "w"), text=True)
    try:
        address = proc.stdout.readline().strip()
        assert address, (tmp_path / "cluster.log").read_text()[-3000:]
        yield address, token
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_sweep_on_two_nodes_with_token_auth(inputs, tmp_path, token_cluster):
    address, token = token_cluster
    home = tmp_path / "home"  # no ~/.ray/auth_token there: this machine has only what we give it
    home.mkdir()
    refused = subprocess.run(sweep_args(inputs, tmp_path / "refused", "--budget", "2", "--max-resource", "3"),
                             env=env_for(inputs, RAY_ADDRESS=address, HOME=str(home)), cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "InvalidAuthToken" in errors[0] and "RAY_AUTH_MODE=token" in errors[0], refused.stderr
    assert len(refused.stderr.splitlines()) <= 3, refused.stderr

    out = tmp_path / "cluster"
    run = subprocess.run(sweep_args(inputs, out, "--budget", "4", "--max-resource", "3"),
                         env=env_for(inputs, RAY_ADDRESS=address, HOME=str(home), RAY_AUTH_MODE="token",
                                     RAY_AUTH_TOKEN=token),
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    table = rows(out)
    assert len(table) == 4 and {r["state"] for r in table} <= {"completed", "pruned"}
    assert json.loads((out / "summary.json").read_text())["finished"] is True
