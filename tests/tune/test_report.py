"""The sweep report's pieces that need no sweep: plots and TensorBoard when their packages are
missing (one line, and the sweep's results unaffected), the parallel-coordinates figure's axes."""
import sys

import pytest

from albert.tune import report
from albert.tune.search.space import Choice, LogUniform, Space, Uniform
from albert.tune.sweep.storage import ResultRecord, TrialRecord


def trials_and_results():
    trials, results = [], []
    for i, lr in enumerate([1e-4, 3e-4, 1e-3, 3e-3], start=1):
        metric = 0.5 if lr == 3e-3 else 0.6 + i / 100
        trials.append(TrialRecord(id=i, kind="search", sample_index=i - 1, parent=None,
                                  config={"lr": lr, "dropout": 0.05 * i, "batch_size": 16}, seed=i, state="completed",
                                  job_from=1, job_to=9, resource=9, metric=metric, checkpoint=None, heartbeat=None,
                                  worker=None, error=None, retries=0, created=0.0, updated=0.0,
                                  rung_metrics={1: metric - 0.1, 9: metric}))
        results += [ResultRecord(seq=2 * i, trial_id=i, resource=1, metric=metric - 0.1, time=0.0, source="result"),
                    ResultRecord(seq=2 * i + 1, trial_id=i, resource=9, metric=metric, time=0.0, source="result")]
    space = Space({"lr": LogUniform(1e-4, 3e-3), "dropout": Uniform(0.0, 0.2), "batch_size": Choice([16, 32])})
    return trials, results, space


def test_plots_name_the_metric_and_show_each_axis(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    saved = []
    original = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, **kw: (saved.append((path.name, fig)), original(fig, path, **kw)))
    trials, results, space = trials_and_results()
    assert report.plot(tmp_path, trials, results, space, [1, 9], "max", "f1") == \
        ["learning_curves.png", "parallel_coordinates.png"]
    figures = dict(saved)
    curves = figures["learning_curves.png"].axes[0]
    assert curves.get_ylabel() == "f1"
    lines = curves.get_lines()
    assert all(line.get_alpha() < 1 and line.get_marker() not in ("", "None") for line in lines[:4])
    parallel = figures["parallel_coordinates.png"]
    assert len(parallel.axes) == 2  # the plot and its colour bar
    assert "f1" in parallel.axes[1].get_ylabel()
    labels = [t.get_text() for t in parallel.axes[0].texts]
    # each axis labelled with its own values: the lr axis in its log scale, 1e-4 to 3e-3
    assert "0.0001" in labels and "0.003" in labels and "0.05" in labels and "0.2" in labels
    assert [t.get_text() for t in parallel.axes[0].get_xticklabels()] == ["lr (log)", "dropout", "batch_size"]


def test_no_matplotlib_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    trials, results, space = trials_and_results()
    assert report.plot(tmp_path, trials, results, space, [1, 9], "max", "f1") == []
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["plots skipped: matplotlib is not installed (pip install -e '.[plots]')"]
    assert not list(tmp_path.iterdir())


def test_no_tensorboard_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    trials, _, _ = trials_and_results()
    assert report.write_hparams(tmp_path / "tb", trials, ["lr"], "f1") is None
    assert capsys.readouterr().err.strip().startswith("TensorBoard HParams skipped: tensorboard is not installed")
    assert not (tmp_path / "tb").exists()


def test_trials_csv_names_the_metric(tmp_path):
    trials, _, _ = trials_and_results()
    rows = report.trial_rows(trials, ["lr"], [1, 9], "f1")
    assert list(rows[0])[5:9] == ["lr", "f1@1", "f1@9", "f1"]
    assert rows[0]["f1@9"] == rows[0]["f1"] == trials[0].metric


def test_sensitivity_waits_for_enough_full_trainings():
    from albert.tune.report import sensitivity

    lengths = {"lr": 0.2, "weight_decay": 3.0, "warmup": 0.7}
    assert sensitivity(None) is None
    assert sensitivity({"results": 3, "length_scales": lengths}) is None  # 3 hyperparameters need 4
    line = sensitivity({"results": 4, "length_scales": lengths})
    assert line.startswith("sensitivity, from 4 full trainings") and line.endswith("lr 0.2, warmup 0.7, weight_decay 3")
