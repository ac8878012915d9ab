"""Checkpoint loading: file formats, what real checkpoints contain, and clear errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

from albert.checkpoint import BACKBONE_TABLE, HEAD_TABLE, LAYER_TABLE, read_state_dict  # noqa: E402
from albert.config import AlbertConfig  # noqa: E402
from albert.errors import AlbertError  # noqa: E402
from albert.model import AlbertForPreTraining, AlbertForSequenceClassification, AlbertModel  # noqa: E402


def small_hf(cls_name: str = "AlbertForSequenceClassification", **kw):
    torch.manual_seed(0)
    cfg = transformers.AlbertConfig(vocab_size=50, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=32, initializer_range=0.3, **kw)
    return getattr(transformers, cls_name)(cfg).eval()


def outputs_equal(hf, ours, attr_hf="logits", attr_ours="logits"):
    ids = torch.randint(5, 50, (2, 7))
    with torch.no_grad():
        a = getattr(hf(input_ids=ids), attr_hf)
        b = getattr(ours.eval()(ids), attr_ours)
    return torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_every_table_row_is_used_by_some_model():
    """No dead rows: every transformers name in the table is produced by a transformers model."""
    names = set()
    for cls in ("AlbertForPreTraining", "AlbertForSequenceClassification", "AlbertForQuestionAnswering"):
        names |= set(small_hf(cls).state_dict())
    theirs = set()
    for _, t in BACKBONE_TABLE:
        theirs |= {"albert." + x for x in (t if isinstance(t, tuple) else (t,))}
    for _, t in LAYER_TABLE:
        theirs |= {"albert.encoder.albert_layer_groups.0.albert_layers.0." + x for x in (t if isinstance(t, tuple) else (t,))}
    for _, t in HEAD_TABLE:
        theirs |= set(t if isinstance(t, tuple) else (t,))
    assert theirs <= names, theirs - names


def test_pytorch_bin_and_sharded_safetensors(tmp_path):
    hf = small_hf()
    (tmp_path / "bin").mkdir()
    hf.config.save_pretrained(tmp_path / "bin")
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    ours = AlbertForSequenceClassification.from_pretrained(tmp_path / "bin")
    assert outputs_equal(hf, ours)

    hf.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    ours = AlbertForSequenceClassification.from_pretrained(tmp_path / "sharded")
    assert outputs_equal(hf, ours)


def test_legacy_checkpoint_contents(tmp_path):
    """Hub checkpoints carry the position_ids buffer and an explicit (tied) decoder."""
    hf = small_hf("AlbertForPreTraining")
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    state["albert.embeddings.position_ids"] = torch.arange(512)[None]
    state["predictions.decoder.weight"] = state["albert.embeddings.word_embeddings.weight"].clone()
    state["predictions.decoder.bias"] = state["predictions.bias"].clone()
    hf.config.save_pretrained(tmp_path)
    from safetensors.torch import save_file
    save_file(state, str(tmp_path / "model.safetensors"))
    ours = AlbertForPreTraining.from_pretrained(tmp_path)
    assert not ours.load_report.unused and not ours.load_report.initialised
    assert outputs_equal(hf, ours, "prediction_logits", "mlm_logits")


def test_missing_heads_are_initialised_and_named(tmp_path, caplog):
    hf = small_hf("AlbertForMaskedLM")  # no pooler, no SOP head
    hf.save_pretrained(tmp_path)
    with caplog.at_level("INFO", logger="albert"):
        ours = AlbertForPreTraining.from_pretrained(tmp_path)
    assert set(ours.load_report.initialised) == {"backbone.pooler.weight", "backbone.pooler.bias",
                                                 "sop.weight", "sop.bias"}
    # Heads only: said at INFO (every trial of a sweep loads it), not as a warning.
    assert ours.load_report.only_heads and [r.levelname for r in caplog.records if "sop.weight" in r.getMessage()] == ["INFO"]
    # A bare AlbertModel checkpoint (no "albert." prefix) loads into a head, and a head into a bare model.
    base = small_hf("AlbertModel")
    base.save_pretrained(tmp_path / "base")
    seq = AlbertForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=4)
    assert set(seq.load_report.initialised) == {"classifier.weight", "classifier.bias"}
    assert seq.classifier.weight.shape == (4, 16)
    hf_seq = small_hf()
    hf_seq.save_pretrained(tmp_path / "seq")
    body = AlbertModel.from_pretrained(tmp_path / "seq")
    assert body.load_report.unused == ["classifier.bias", "classifier.weight"]
    assert outputs_equal(hf_seq.albert, body, "last_hidden_state", "last_hidden_state")


def test_config_json_round_trip(tmp_path):
    hf = small_hf(num_hidden_groups=2, inner_group_num=2, hidden_act="relu", num_labels=3,
                  id2label={0: "neg", 1: "neu", 2: "pos"})
    hf.save_pretrained(tmp_path)
    c = AlbertConfig.from_json_file(tmp_path / "config.json")
    assert (c.num_hidden_groups, c.inner_group_num, c.hidden_act, c.num_labels) == (2, 2, "relu", 3)
    assert c.id2label == {0: "neg", 1: "neu", 2: "pos"}
    c.save(tmp_path / "again")
    back = transformers.AlbertConfig.from_pretrained(tmp_path / "again")
    assert back.id2label == {0: "neg", 1: "neu", 2: "pos"} and back.num_hidden_groups == 2


# --- bad input: clear errors, exit code 2 from the command line ---------------------------------

def bad_dirs(tmp_path):
    good = tmp_path / "good"
    small_hf().save_pretrained(good)
    cases = {}
    d = tmp_path / "no-config"
    d.mkdir()
    cases["no config.json"] = (d, "no config.json")
    d = tmp_path / "bert"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 16}))
    cases["not albert"] = (d, "not 'albert'")
    d = tmp_path / "truncated"
    d.mkdir()
    (d / "config.json").write_text((good / "config.json").read_text())
    data = (good / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (d, "corrupt or truncated")
    d = tmp_path / "shape"
    d.mkdir()
    cfg = json.loads((good / "config.json").read_text())
    cfg["intermediate_size"] = 48
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "model.safetensors").write_bytes(data)
    cases["shape mismatch"] = (d, "has shape")
    d = tmp_path / "no-weights"
    d.mkdir()
    (d / "config.json").write_text((good / "config.json").read_text())
    cases["no weights"] = (d, "no weights found")
    d = tmp_path / "bad-bin"
    d.mkdir()
    (d / "config.json").write_text((good / "config.json").read_text())
    (d / "pytorch_model.bin").write_bytes(b"not a zip file at all")
    cases["corrupt bin"] = (d, "cannot read PyTorch weights")
    cases["missing dir"] = (tmp_path / "nowhere" / "x", "no such checkpoint directory")
    from safetensors.torch import load_file, save_file
    d = tmp_path / "nan"
    d.mkdir()
    (d / "config.json").write_text((good / "config.json").read_text())
    state = load_file(str(good / "model.safetensors"))
    state["albert.encoder.embedding_hidden_mapping_in.bias"][1] = float("inf")
    save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})
    cases["non-finite weights"] = (d, f"{d}: tensor albert.encoder.embedding_hidden_mapping_in.bias holds NaN or "
                                      "inf values; the checkpoint is damaged or was saved from a diverged run")
    return cases


def test_bad_checkpoints_raise_clear_errors(tmp_path):
    for name, (path, needle) in bad_dirs(tmp_path).items():
        with pytest.raises(AlbertError) as e:
            AlbertForSequenceClassification.from_pretrained(path)
        assert needle in str(e.value), (name, str(e.value))


def test_bad_checkpoints_exit_2_from_the_command_line(tmp_path):
    for name, (path, needle) in bad_dirs(tmp_path).items():
        r = subprocess.run([sys.executable, "-m", "albert.model", str(path)], capture_output=True, text=True)
        assert r.returncode == 2, (name, r.stderr)
        assert "Traceback" not in r.stderr and needle in r.stderr, (name, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_hub_name_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    r = subprocess.run([sys.executable, "-m", "albert.model", "albert-base-v2"], capture_output=True,
                       text=True, env={**__import__("os").environ})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "albert-base-v2" in r.stderr and "hub" in r.stderr


def test_read_state_dict_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    torch.save({"x": Evil()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(AlbertError, match="cannot read PyTorch weights"):
        read_state_dict(tmp_path)


def test_only_a_mismatch_outside_the_heads_is_a_warning():
    from albert.checkpoint import LoadReport

    assert LoadReport(initialised=["classifier.weight"], unused=["predictions.bias", "albert.pooler.weight"]).only_heads
    assert not LoadReport(initialised=["backbone.encoder.groups.0.layers.0.ffn.weight"]).only_heads
    assert not LoadReport(unused=["albert.embeddings.word_embeddings.weight"]).only_heads
