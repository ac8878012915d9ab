"""Search spaces: reproducible per-trial sampling, the distributions, validation, --space files."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from albert.errors import AlbertError
from albert.tune.search.space import (FORMER_NAMES, HYPERPARAMETERS, Choice, IntUniform, LogUniform, Space, Uniform,
                                     current_names, default_space)


def test_sample_depends_only_on_seed_and_index():
    space = default_space("rte")
    forward = [space.sample(7, i) for i in range(20)]
    backward = [space.sample(7, i) for i in reversed(range(20))][::-1]
    assert forward == backward
    assert space.sample(7, 3) == forward[3]
    assert space.sample(8, 3) != forward[3]
    assert len({json.dumps(c, sort_keys=True) for c in forward}) == 20
    # values are plain Python types, so they go to JSON and back unchanged
    assert json.loads(json.dumps(forward)) == forward
    assert all(type(c["batch_size"]) is int and type(c["lr"]) is float for c in forward)


def test_sample_ignores_key_order():
    a = Space({"lr": LogUniform(1e-5, 1e-4), "warmup": Uniform(0.0, 0.2)})
    b = Space({"warmup": Uniform(0.0, 0.2), "lr": LogUniform(1e-5, 1e-4)})
    assert [a.sample(0, i) for i in range(5)] == [b.sample(0, i) for i in range(5)]


def test_distributions_have_the_right_shape():
    space = Space({"lr": LogUniform(1e-6, 1e-2), "u": Uniform(-1.0, 3.0), "n": IntUniform(2, 5),
                   "c": Choice(["a", "b", "c"])})
    samples = [space.sample(0, i) for i in range(2000)]
    logs = np.log10([s["lr"] for s in samples])
    # log-uniform: log10(lr) uniform on [-6, -2]
    assert stats.kstest((logs + 6) / 4, "uniform").pvalue > 1e-3
    us = np.array([s["u"] for s in samples])
    assert us.min() >= -1 and us.max() < 3
    assert stats.kstest((us + 1) / 4, "uniform").pvalue > 1e-3
    assert {s["n"] for s in samples} == {2, 3, 4, 5}  # both ends included
    counts = np.bincount(["abc".index(s["c"]) for s in samples])
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("dist, message", [
    (LogUniform(0.0, 1e-4), "log-uniform needs low > 0"),
    (LogUniform(-1e-5, 1e-4), "log-uniform needs low > 0"),
    (Uniform(0.2, 0.2), "empty range"),
    (Uniform(0.3, 0.1), "empty range"),
    (Uniform(0.0, math.inf), "finite"),
    (IntUniform(4, 4), "empty range"),
    (IntUniform(1.5, 4), "integers"),
    (Choice([]), "no values"),
])
def test_invalid_distributions_name_the_parameter(dist, message):
    with pytest.raises(AlbertError, match=message) as err:
        Space({"my_param": dist})
    assert "my_param" in str(err.value)


def test_default_space_ranges():
    space = default_space("mrpc")
    assert set(space) == {"lr", "batch_size", "warmup", "weight_decay", "dropout", "layer_lr_decay"}
    assert space["lr"] == LogUniform(5e-6, 1e-4)
    assert space["batch_size"].options == (16, 32, 64)
    assert default_space("squad").to_json()["batch_size"]["values"] == [16, 32, 48]
    for i in range(50):
        c = space.sample(1, i)
        assert 5e-6 <= c["lr"] <= 1e-4 and 0.7 <= c["layer_lr_decay"] <= 1.0


def test_from_json_round_trip_and_shorthand(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-4},
                                "batch_size": {"type": "choice", "values": [16, 32]},
                                "warmup": [0.0, 0.1]}))
    space = Space.from_json(path)
    assert space["lr"] == LogUniform(1e-5, 1e-4)
    assert space["batch_size"] == Choice([16, 32])
    assert space["warmup"] == Choice([0.0, 0.1])
    assert Space.from_dict(space.to_json()) == space


@pytest.mark.parametrize("spec, message", [
    ({"learning_rate": {"type": "loguniform", "low": 1e-5, "high": 1e-4}}, "key 'learning_rate': unknown hyperparameter"),
    ({"lr": {"type": "gaussian", "low": 1, "high": 2}}, "key 'lr': unknown type 'gaussian'"),
    ({"lr": {"type": "uniform", "low": 1}}, "key 'lr': type 'uniform' takes exactly low, high"),
    ({"lr": {"type": "loguniform", "low": 0, "high": 1e-4}}, "'lr': log-uniform needs low > 0"),
    ({"batch_size": {"type": "choice", "values": []}}, "'batch_size': choice has no values"),
    ({"lr": 0.1}, "key 'lr': expected an object"),
    ({}, "the search space is empty"),
])
def test_from_json_errors_name_file_and_key(tmp_path, spec, message):
    path = tmp_path / "bad-space.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(AlbertError, match=message) as err:
        Space.from_json(path)
    assert str(path) in str(err.value)


def test_from_json_syntax_error_has_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "lr": {"type": "uniform",\n  "low": 1 "high": 2}\n}\n')
    with pytest.raises(AlbertError, match=rf"{path}:3: invalid JSON"):
        Space.from_json(path)
    with pytest.raises(AlbertError, match="cannot read"):
        Space.from_json(tmp_path / "missing.json")


MIXED = Space({"lr": LogUniform(1e-6, 1e-2), "u": Uniform(-1.0, 3.0), "n": IntUniform(2, 5),
               "act": Choice(["gelu", "relu", "silu"]), "flag": Choice([True, False])})


def test_unit_cube_round_trip():
    for i in range(200):
        config = MIXED.sample(3, i)
        point = MIXED.encode(config)
        assert point.shape == (MIXED.width,) == (3 + 2 + 1 + 1 + 1,)
        assert ((point >= 0) & (point <= 1)).all()
        back = MIXED.decode(point)
        assert {k: back[k] for k in ("n", "act", "flag")} == {k: config[k] for k in ("n", "act", "flag")}
        assert back["lr"] == pytest.approx(config["lr"], rel=1e-12) and back["u"] == pytest.approx(config["u"], abs=1e-12)
        assert type(back["n"]) is int and type(back["flag"]) is bool


def test_unit_cube_scales():
    space = Space({"lr": LogUniform(1e-5, 1e-1), "n": IntUniform(0, 3)})
    # log scale: 1e-3 is half way between 1e-5 and 1e-1
    assert space.encode({"lr": 1e-3, "n": 0})[0] == pytest.approx(0.5)
    # integers sit at their bin's centre, and any point of a bin rounds to it
    assert list(space.encode({"lr": 1e-5, "n": 2})) == pytest.approx([0.0, 0.625])
    assert [space.decode([0.0, u])["n"] for u in (0.0, 0.2499, 0.25, 0.74, 0.99, 1.0)] == [0, 0, 1, 2, 3, 3]
    # a choice is one-hot; the largest coordinate wins
    assert MIXED.decode(np.r_[[0.2, 0.7, 0.1], [0.0, 1.0], 0.5, 0.5, 0.5])["act"] == "relu"
    assert MIXED.kinds() == ["onehot"] * 3 + ["onehot"] * 2 + ["continuous", "int", "continuous"]
    assert MIXED.names == ["act", "flag", "lr", "n", "u"]


def test_quantiles_cover_each_range():
    lo = MIXED.from_quantiles([0.0] * 5)
    hi = MIXED.from_quantiles([1.0] * 5)
    assert lo == {"act": "gelu", "flag": True, "lr": 1e-6, "n": 2, "u": -1.0}
    assert hi["act"] == "silu" and hi["flag"] is False and hi["n"] == 5
    assert hi["lr"] == pytest.approx(1e-2) and hi["u"] == pytest.approx(3.0)


def test_redraws_are_pure_functions_of_seed_index_and_attempt():
    assert MIXED.sample(1, 4, attempt=0) == MIXED.sample(1, 4)
    assert MIXED.sample(1, 4, attempt=2) == MIXED.sample(1, 4, attempt=2) != MIXED.sample(1, 4, attempt=1)


def test_architecture_rule_uses_the_presets_shape():
    from albert.tune.search.space import architecture_problem

    assert architecture_problem({"preset": "tiny", "num_attention_heads": 3}) == \
        "num_attention_heads 3 does not divide hidden_size 128"
    assert architecture_problem({"preset": "tiny", "num_attention_heads": 4}) is None
    assert architecture_problem({"preset": "tiny", "hidden_size": 96, "num_attention_heads": 4}) is None
    assert architecture_problem({"model": "some/dir", "lr": 1e-5}) is None


def test_architecture_names_are_the_finetune_options():
    from albert.finetune import ARCHITECTURE as FINETUNE
    from albert.tune.search.space import ARCHITECTURE, HYPERPARAMETERS

    assert ARCHITECTURE == FINETUNE and set(ARCHITECTURE) <= set(HYPERPARAMETERS)


def test_default_lr_range_follows_the_starting_point():
    """Issue 11: the paper's range (5e-6..1e-4) left a random tiny model at one class in every
    trial; a random initialisation or a small pretrained model gets a range around its own default."""
    def lr(**kw):
        d = default_space("sst2", **kw).to_json()["lr"]
        return d["type"], d["low"], d["high"]

    assert lr(pretrained=False, hidden_size=128) == ("loguniform", 1e-4, 3e-3)
    assert lr(pretrained=True, hidden_size=128) == ("loguniform", 1e-4, 3e-3)
    assert lr(pretrained=True, hidden_size=768) == ("loguniform", 5e-6, 1e-4)  # the paper's, base and up
    low, high = lr(pretrained=False, hidden_size=768)[1:]
    assert low == pytest.approx(1e-5) and high == pytest.approx(3e-4)
    assert default_space("rte") == default_space("rte", pretrained=True, hidden_size=768)


def test_coordinates_name_each_hyperparameters_slice_of_the_unit_cube():
    space = Space({"lr": LogUniform(1e-5, 1e-1), "c": Choice(["a", "b", "c"]), "n": IntUniform(2, 6)})
    where = space.coordinates()
    assert where == {"c": slice(0, 3), "lr": slice(3, 4), "n": slice(4, 5)}
    point = space.encode({"lr": 1e-3, "c": "b", "n": 4})
    assert list(point[where["c"]]) == [0.0, 1.0, 0.0] and sum(s.stop - s.start for s in where.values()) == space.width


def test_a_space_under_the_former_names_reads_as_option_names_and_draws_alike():
    old = Space.from_dict({"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-3},
                           "warmup_ratio": {"type": "uniform", "low": 0.0, "high": 0.2},
                           "classifier_dropout": [0.0, 0.1], "hidden_dropout_prob": {"type": "uniform", "low": 0, "high": 0.3},
                           "attention_probs_dropout_prob": {"type": "uniform", "low": 0, "high": 0.3},
                           "batch_size": [16, 32]}, HYPERPARAMETERS)
    assert list(old) == ["lr", "warmup", "dropout", "hidden_dropout", "attention_dropout", "batch_size"]
    new = Space({"lr": LogUniform(1e-5, 1e-3), "warmup": Uniform(0.0, 0.2), "dropout": Choice([0.0, 0.1]),
                 "hidden_dropout": Uniform(0, 0.3), "attention_dropout": Uniform(0, 0.3), "batch_size": Choice([16, 32])})
    assert old == new
    # The draw goes in name order; every former name sorted where its option name does, so the
    # configurations an old sweep drew are the ones it draws now.
    olds = sorted(list(FORMER_NAMES) + [n for n in HYPERPARAMETERS if n not in FORMER_NAMES.values()])
    assert [FORMER_NAMES.get(n, n) for n in olds] == sorted(HYPERPARAMETERS)
    assert current_names({"warmup_ratio": 0.1, "lr": 1e-4}) == {"warmup": 0.1, "lr": 1e-4}
    assert set(old.sample(0, 3)) == set(new)
