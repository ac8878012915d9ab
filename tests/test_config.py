"""Model config.json: every value type-checked, one line naming the file and the key; what
transformers writes (ints for floats, nulls, keys of its own) keeps loading, to the same values
transformers reads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from albert.config import AlbertConfig, preset
from albert.errors import AlbertError

from test_cli import cli  # runs a script in this process, as the command line would

transformers = pytest.importorskip("transformers")


def written_by_transformers(directory: Path, **changes) -> Path:
    """A config.json as transformers saves it (micro shape, 3 labels), with `changes` edited in
    by hand (None deletes a key)."""
    hf = transformers.AlbertConfig(vocab_size=1000, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                                   num_labels=3)
    hf.save_pretrained(directory)
    path = directory / "config.json"
    d = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    path.write_text(json.dumps(d))
    return path


# (edits to the config.json, what the error says after "<file>: ")
BAD = {
    "id2label key not an integer": (dict(id2label={"0": "O", "one": "B-PER"}),
                                    "key 'id2label': expected integer keys, got \"one\""),
    "id2label label not a string": (dict(id2label={"0": "O", "1": 7}), "key 'id2label[\"1\"]': expected a string, got 7"),
    "id2label not an object": (dict(id2label=["O", "B-PER"]), "key 'id2label': expected an object or null, got [\"O\", \"B-PER\"]"),
    "id2label ids with a gap": (dict(id2label={"0": "O", "2": "B-PER"}),
                                "key 'id2label': keys must be the label ids 0..1, got [0, 2]"),
    "num_labels a string": (dict(id2label=None, label2id=None, num_labels="3"),
                            "key 'num_labels': expected an integer, got \"3\""),
    "num_labels zero": (dict(id2label=None, label2id=None, num_labels=0), "key 'num_labels': must be a positive integer, got 0"),
    "layer_norm_eps a string": (dict(layer_norm_eps="1e-12"), "key 'layer_norm_eps': expected a finite number, got \"1e-12\""),
    "layer_norm_eps NaN": (dict(layer_norm_eps=float("nan")), "key 'layer_norm_eps': expected a finite number, got NaN"),
    "layer_norm_eps zero": (dict(layer_norm_eps=0), "key 'layer_norm_eps': must be a positive number, got 0.0"),
    "initializer_range a string": (dict(initializer_range="0.02"),
                                   "key 'initializer_range': expected a finite number, got \"0.02\""),
    "initializer_range negative": (dict(initializer_range=-0.02), "key 'initializer_range': must be a number >= 0, got -0.02"),
    "pad_token_id = vocab_size": (dict(pad_token_id=1000),
                                  "key 'pad_token_id': 1000 is outside the vocabulary (vocab_size 1000)"),
    "pad_token_id negative": (dict(pad_token_id=-1), "key 'pad_token_id': -1 is outside the vocabulary (vocab_size 1000)"),
    "pad_token_id a float": (dict(pad_token_id=0.0), "key 'pad_token_id': expected an integer or null, got 0.0"),
    "true as an integer": (dict(num_hidden_layers=True), "key 'num_hidden_layers': expected an integer, got true"),
    "false as a number": (dict(hidden_dropout_prob=False), "key 'hidden_dropout_prob': expected a finite number, got false"),
    "hidden_act unknown": (dict(hidden_act="gelu2"),
                           "key 'hidden_act': 'gelu2' is not one of gelu_new, gelu_pytorch_tanh, gelu, gelu_fast, "
                           "relu, silu, swish"),
    "hidden_act not a string": (dict(hidden_act=5), "key 'hidden_act': expected a string, got 5"),
    "negative hidden size": (dict(hidden_size=-32), "key 'hidden_size': must be a positive integer, got -32"),
    "zero vocabulary": (dict(vocab_size=0), "key 'vocab_size': must be a positive integer, got 0"),
    "heads do not divide": (dict(num_attention_heads=3), "key 'hidden_size': 32 is not a multiple of num_attention_heads 3"),
    "more groups than layers": (dict(num_hidden_groups=3), "key 'num_hidden_groups': 3 exceeds num_hidden_layers 2"),
    "dropout 1": (dict(hidden_dropout_prob=1), "key 'hidden_dropout_prob': must be in [0, 1), got 1.0"),
    "dropout negative": (dict(attention_probs_dropout_prob=-0.1),
                         "key 'attention_probs_dropout_prob': must be in [0, 1), got -0.1"),
    "classifier dropout 1.5": (dict(classifier_dropout_prob=1.5), "key 'classifier_dropout_prob': must be in [0, 1), got 1.5"),
    "architectures a string": (dict(architectures="AlbertForMaskedLM"),
                               "key 'architectures': expected an array or null, got \"AlbertForMaskedLM\""),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_value_names_file_and_key(tmp_path, case):
    changes, expected = BAD[case]
    path = written_by_transformers(tmp_path, **changes)
    with pytest.raises(AlbertError) as e:
        AlbertConfig.from_json_file(path)
    assert str(e.value) == f"{path}: {expected}"


def test_what_transformers_writes_loads_to_the_values_transformers_reads(tmp_path):
    """A config.json in the hub's albert-base-v2 style (`0` for float dropouts, keys of older
    versions) and one with nulls where transformers allows them."""
    hub_style = {"architectures": ["AlbertForMaskedLM"], "attention_probs_dropout_prob": 0, "bos_token_id": 2,
                 "classifier_dropout_prob": 0.1, "down_scale_factor": 1, "embedding_size": 16, "eos_token_id": 3,
                 "gap_size": 0, "hidden_act": "gelu_new", "hidden_dropout_prob": 0, "hidden_size": 32,
                 "initializer_range": 0.02, "inner_group_num": 1, "intermediate_size": 64, "layer_norm_eps": 1e-12,
                 "max_position_embeddings": 128, "model_type": "albert", "net_structure_type": 0,
                 "num_attention_heads": 2, "num_hidden_groups": 1, "num_hidden_layers": 2, "num_memory_blocks": 0,
                 "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 1000}
    nulls = {**hub_style, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None, "architectures": None,
             "problem_type": None, "id2label": None, "dtype": None}
    for name, d in (("hub", hub_style), ("nulls", nulls)):
        (tmp_path / name).mkdir()
        path = tmp_path / name / "config.json"
        path.write_text(json.dumps(d))
        ours = AlbertConfig.from_json_file(path)
        theirs = transformers.AlbertConfig.from_pretrained(path.parent)
        for key in ("attention_probs_dropout_prob", "hidden_dropout_prob", "classifier_dropout_prob",
                    "pad_token_id", "bos_token_id", "eos_token_id", "num_labels", "architectures"):
            assert getattr(ours, key) == getattr(theirs, key), (name, key)
        assert type(ours.attention_probs_dropout_prob) is float
        assert ours.extra["down_scale_factor"] == 1  # kept, written back on save
        ours.save(tmp_path / name / "again")
        back = transformers.AlbertConfig.from_pretrained(tmp_path / name / "again").to_dict()
        back.pop("position_embedding_type")  # we write it (the only kind we support); the hub file has none
        assert back == theirs.to_dict(), name
    # transformers 5 refuses a null classifier dropout; the heads here read it as "no dropout".
    assert AlbertConfig.from_hf_dict({**nulls, "classifier_dropout_prob": None}).classifier_dropout_prob is None


def test_saved_by_transformers_round_trips(tmp_path):
    path = written_by_transformers(tmp_path)
    c = AlbertConfig.from_json_file(path)
    assert (c.num_labels, c.id2label, c.vocab_size) == (3, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, 1000)
    c.save(tmp_path / "again")
    assert AlbertConfig.from_json_file(tmp_path / "again" / "config.json") == c


def test_num_labels_disagreeing_with_id2label_is_refused(tmp_path):
    """transformers never writes num_labels; given one that disagrees, transformers 5 keeps it and
    renames every label LABEL_i with a warning. Here: one line naming the file and both keys."""
    path = written_by_transformers(tmp_path, num_labels=5)
    with pytest.raises(AlbertError) as e:
        AlbertConfig.from_json_file(path)
    assert str(e.value) == f"{path}: key 'num_labels': 5 disagrees with the 3 labels of id2label"
    assert AlbertConfig.from_json_file(written_by_transformers(tmp_path, num_labels=3)).num_labels == 3


def test_configs_built_in_python_are_checked_too():
    with pytest.raises(AlbertError, match=r"^ALBERT config: key 'pad_token_id': 2000 is outside the vocabulary"):
        preset("micro", pad_token_id=2000)
    with pytest.raises(AlbertError, match=r"^ALBERT config: key 'num_labels': 2 disagrees with the 3 labels"):
        AlbertConfig(id2label={0: "a", 1: "b", 2: "c"})
    with pytest.raises(AlbertError, match=r"^ALBERT config: key 'num_hidden_layers': must be a positive integer, got True"):
        preset("micro", num_hidden_layers=True)
    assert preset("micro", pad_token_id=None).pad_token_id is None


@pytest.mark.parametrize("case", ["num_labels a string", "layer_norm_eps a string", "pad_token_id = vocab_size",
                                  "id2label key not an integer", "true as an integer"])
def test_finetune_from_a_bad_model_is_one_line_exit_2(tmp_path, capsys, monkeypatch, case):
    """From the command line: exit 2, the file and key on one line, no training started (no log,
    no checkpoint: the failure used to come at step 1, after an empty log.jsonl)."""
    changes, expected = BAD[case]
    model = tmp_path / "model"
    path = written_by_transformers(model, **changes)
    out = tmp_path / "run"
    code, _, err = cli(capsys, monkeypatch, "finetune.py", "--task", "ner", "--model", model, "--data-dir",
                       tmp_path / "no-data", "--output-dir", out, "--max-steps", "2", "--no-progress")
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"error: {path}: {expected}"]
    assert not out.exists()  # checked before anything is written: no config.json, no output directory
