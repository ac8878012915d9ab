"""Parity with transformers' ALBERT: every head, several shapes, through checkpoints that
transformers itself writes, and back."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from albert.config import AlbertConfig, preset  # noqa: E402
from albert.model import HEADS  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from count_syncs import HostSyncs  # noqa: E402

# A large init range makes attention far from uniform, so a swapped q/k/v or group mapping
# changes the outputs by far more than the tolerance.
SHAPES = {
    "groups2-inner2": dict(embedding_size=16, hidden_size=32, num_hidden_layers=4, num_hidden_groups=2,
                           inner_group_num=2, num_attention_heads=4, intermediate_size=37, hidden_act="gelu_new"),
    "E-equals-H-gelu": dict(embedding_size=24, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
                            intermediate_size=48, hidden_act="gelu"),
    "relu-groups3": dict(embedding_size=8, hidden_size=32, num_hidden_layers=6, num_hidden_groups=3,
                         num_attention_heads=2, intermediate_size=40, hidden_act="relu"),
    "uneven-groups": dict(embedding_size=12, hidden_size=16, num_hidden_layers=5, num_hidden_groups=2,
                          inner_group_num=3, num_attention_heads=4, intermediate_size=20, hidden_act="gelu_new"),
}
VOCAB = 97

OUTPUTS = {
    "AlbertModel": [("last_hidden_state", "last_hidden_state"), ("pooler_output", "pooler_output")],
    "AlbertForPreTraining": [("prediction_logits", "mlm_logits"), ("sop_logits", "sop_logits")],
    "AlbertForMaskedLM": [("logits", "logits")],
    "AlbertForSequenceClassification": [("logits", "logits")],
    "AlbertForTokenClassification": [("logits", "logits")],
    "AlbertForQuestionAnswering": [("start_logits", "start_logits"), ("end_logits", "end_logits")],
    "AlbertForMultipleChoice": [("logits", "logits")],
}


def head_inputs(head: str, seed: int = 0):
    """inputs(seed), as one question with three options (1, 3, T) for the multiple-choice head."""
    ids, mask, types = inputs(seed)
    return tuple(x.view(1, *x.shape) for x in (ids, mask, types)) if head == "AlbertForMultipleChoice" \
        else (ids, mask, types)


def hf_config(shape: str, head: str) -> "transformers.AlbertConfig":
    num_labels = 2 if head in ("AlbertForQuestionAnswering", "AlbertForPreTraining") else 3
    return transformers.AlbertConfig(vocab_size=VOCAB, initializer_range=0.25, num_labels=num_labels,
                                     max_position_embeddings=64, **SHAPES[shape])


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (3, 13), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    return ids, mask, types


def rel_err(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    if mask is not None:  # outputs at padded positions are not meaningful
        a, b = a[mask.bool()], b[mask.bool()]
    return ((a - b).abs().max() / a.abs().max()).item()


def hf_model(shape: str, head: str, seed: int = 0):
    torch.manual_seed(seed)
    return getattr(transformers, head)(hf_config(shape, head)).eval()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("head", HEADS)
def test_outputs_match_transformers(tmp_path, shape, head):
    hf = hf_model(shape, head)
    hf.save_pretrained(tmp_path)
    ours = HEADS[head].from_pretrained(tmp_path).eval()
    assert not ours.load_report.initialised and not ours.load_report.unused, str(ours.load_report)
    ids, mask, types = head_inputs(head)
    with torch.no_grad():
        a = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        b = ours(ids, mask, types)
    for theirs, mine in OUTPUTS[head]:
        ta, tb = getattr(a, theirs), getattr(b, mine)
        assert ta.shape == tb.shape
        per_token = ta.dim() >= 2 and ta.shape[:2] == ids.shape
        assert rel_err(ta, tb, mask if per_token else None) < 1e-4, (theirs, rel_err(ta, tb))

    # fp64: identical arithmetic up to summation order, so the mapping is exact, not just close.
    hf.double()
    ours.double()
    with torch.no_grad():
        a = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        b = ours(ids, mask, types)
    for theirs, mine in OUTPUTS[head]:
        ta, tb = getattr(a, theirs), getattr(b, mine)
        per_token = ta.dim() >= 2 and ta.shape[:2] == ids.shape
        assert rel_err(ta, tb, mask if per_token else None) < 1e-10


@pytest.mark.parametrize("head", HEADS)
def test_round_trip_ours_to_transformers(tmp_path, head):
    shape = "groups2-inner2"
    hfc = hf_config(shape, head)
    config = AlbertConfig.from_hf_dict(hfc.to_dict())
    torch.manual_seed(1)
    ours = HEADS[head](config).eval()
    # Move every parameter away from its init so that a dropped tensor shows.
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    ours.save_pretrained(tmp_path)
    hf, info = getattr(transformers, head).from_pretrained(tmp_path, output_loading_info=True)
    hf.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    ids, mask, types = head_inputs(head, 1)
    with torch.no_grad():
        a = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        b = ours(ids, mask, types)
    for theirs, mine in OUTPUTS[head]:
        ta, tb = getattr(a, theirs), getattr(b, mine)
        per_token = ta.dim() >= 2 and ta.shape[:2] == ids.shape
        assert rel_err(ta, tb, mask if per_token else None) < 1e-4
    # And back into ours: bit-identical parameters.
    again = HEADS[head].from_pretrained(tmp_path)
    for (n1, p1), (n2, p2) in zip(ours.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1


def _labels(head: str, ids: torch.Tensor, mask: torch.Tensor):
    g = torch.Generator().manual_seed(3)
    if head in ("AlbertForPreTraining", "AlbertForMaskedLM"):
        labels = torch.full_like(ids, -100)
        pick = (torch.rand(ids.shape, generator=g) < 0.3) & mask.bool()
        labels[pick] = ids[pick]
        extra = {"sentence_order_label": torch.tensor([0, 1, 1])} if head == "AlbertForPreTraining" else {}
        return {"labels": labels, **extra}
    if head == "AlbertForSequenceClassification":
        return {"labels": torch.tensor([0, 2, 1])}
    if head == "AlbertForTokenClassification":
        labels = torch.randint(0, 3, ids.shape, generator=g)
        labels[mask == 0] = -100
        return {"labels": labels}
    if head == "AlbertForQuestionAnswering":
        return {"start_positions": torch.tensor([1, 3, 20]), "end_positions": torch.tensor([2, 5, 20])}
    if head == "AlbertForMultipleChoice":
        return {"labels": torch.tensor([2])}
    return None


def _as_positions(labels: torch.Tensor, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-length labels (-100 where nothing is predicted) as fixed-size (B, slots) positions
    and labels, padded with position 0 and label -100: the pretraining collate's layout."""
    positions = torch.zeros(labels.shape[0], slots, dtype=torch.long)
    targets = torch.full((labels.shape[0], slots), -100, dtype=torch.long)
    for i, row in enumerate(labels):
        where = (row != -100).nonzero().flatten()
        positions[i, :len(where)] = where
        targets[i, :len(where)] = row[where]
    return positions, targets


@pytest.mark.parametrize("head", [h for h in HEADS if h != "AlbertModel"])
def test_losses_and_gradients_match_transformers(tmp_path, head):
    hf = hf_model("groups2-inner2", head)
    hf.save_pretrained(tmp_path)
    ours = HEADS[head].from_pretrained(tmp_path).eval()
    ids, mask, types = head_inputs(head, 2)
    labels = _labels(head, ids, mask)
    a = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, **labels)
    b = ours(ids, mask, types, **labels)
    assert abs(a.loss.item() - b.loss.item()) < 1e-5 * max(1.0, abs(a.loss.item()))
    if head in ("AlbertForPreTraining", "AlbertForMaskedLM"):
        # Logits only at masked positions, in row-major order of the labels.
        full = a.prediction_logits if head == "AlbertForPreTraining" else a.logits
        selected = full[labels["labels"] != -100]
        mine = b.mlm_logits
        assert mine.shape == selected.shape
        assert rel_err(selected.detach(), mine.detach()) < 1e-4
    a.loss.backward()
    b.loss.backward()
    # The word-embedding gradient collects every path (input, tied MLM decoder): compare it.
    ga = hf.albert.embeddings.word_embeddings.weight.grad
    gb = ours.backbone.embed.word.weight.grad
    assert rel_err(ga, gb) < 1e-4
    # Gradient of the shared layer's fused qkv equals transformers' three gradients stacked.
    layer_a = hf.albert.encoder.albert_layer_groups[1].albert_layers[1].attention
    qkv_grad = torch.cat([layer_a.query.weight.grad, layer_a.key.weight.grad, layer_a.value.weight.grad])
    assert rel_err(qkv_grad, ours.backbone.encoder.groups[1].layers[1].qkv.weight.grad) < 1e-4
    if head in ("AlbertForPreTraining", "AlbertForMaskedLM"):
        # The training layout: a fixed number of masked positions per row, gathered; the same
        # loss, logits at those positions and gradients as transformers' full-length labels.
        ours.zero_grad()
        positions, targets = _as_positions(labels["labels"], slots=9)
        rest = {k: v for k, v in labels.items() if k != "labels"}
        c = ours(ids, mask, types, mlm_positions=positions, mlm_labels=targets, **rest)
        assert abs(a.loss.item() - c.loss.item()) < 1e-5 * max(1.0, abs(a.loss.item()))
        assert c.mlm_logits.shape == (3, 9, VOCAB)
        scored = targets != -100
        expected = full.gather(1, positions[..., None].expand(-1, -1, VOCAB))
        assert rel_err(expected[scored].detach(), c.mlm_logits[scored].detach()) < 1e-4
        c.loss.backward()
        assert rel_err(ga, ours.backbone.embed.word.weight.grad) < 1e-4


@pytest.mark.parametrize("head", [h for h in HEADS if h != "AlbertModel"])
def test_training_step_reads_nothing_back_from_the_device(head):
    # Forward and backward with a padding mask, the pretraining heads on masked positions: no
    # value read back to the host and no data-dependent shape (each one a GPU sync).
    config = preset("micro", vocab_size=VOCAB, num_labels=2 if head == "AlbertForQuestionAnswering" else 3)
    model = HEADS[head](config)
    ids, mask, types = head_inputs(head, 4)
    labels = _labels(head, ids, mask)
    if "labels" in labels and head in ("AlbertForPreTraining", "AlbertForMaskedLM"):
        positions, targets = _as_positions(labels.pop("labels"), slots=9)
        labels.update(mlm_positions=positions, mlm_labels=targets)
    for attention_mask in (mask, None):
        with HostSyncs() as syncs:
            model(ids, attention_mask, types, **labels).loss.backward()
        assert not syncs.events, syncs.events
    if head == "AlbertForPreTraining":  # the transformers layout picks rows by a boolean mask: counted
        with HostSyncs() as syncs:
            model(ids, mask, types, labels=_labels(head, ids, mask)["labels"]).loss.backward()
        assert len(syncs.events) >= 2


@pytest.mark.parametrize("head", [h for h in HEADS if h != "AlbertModel"])
def test_backbone_is_initialised_once(head):
    # A head draws its backbone's weights exactly as a bare backbone does from the same seed
    # (drawn once, not drawn and then drawn again), then only its own layers.
    config = preset("micro", initializer_range=0.05)
    torch.manual_seed(3)
    bare = HEADS["AlbertModel"](config, add_pooling_layer=head in ("AlbertForPreTraining",
                                                                     "AlbertForSequenceClassification",
                                                                     "AlbertForMultipleChoice"))
    torch.manual_seed(3)
    model = HEADS[head](config)
    for name, p in bare.state_dict().items():
        assert torch.equal(p, model.backbone.state_dict()[name]), name


def test_regression_head_uses_mse(tmp_path):
    hfc = hf_config("E-equals-H-gelu", "AlbertForSequenceClassification")
    hfc.num_labels = 1
    torch.manual_seed(0)
    hf = transformers.AlbertForSequenceClassification(hfc).eval()
    hf.save_pretrained(tmp_path)
    ours = HEADS["AlbertForSequenceClassification"].from_pretrained(tmp_path).eval()
    ids, mask, types = inputs()
    y = torch.tensor([0.5, 3.2, 4.9])
    a = hf(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=y)
    b = ours(ids, mask, types, labels=y)
    assert b.logits.shape == (3, 1)
    assert abs(a.loss.item() - b.loss.item()) < 1e-5 * max(1.0, a.loss.item())


def test_group_schedule_follows_albert_rule():
    c = preset("micro", num_hidden_layers=5, num_hidden_groups=2)
    assert [c.group_of_layer(i) for i in range(5)] == [0, 0, 0, 1, 1]  # int(i / 2.5)
    c = preset("micro", num_hidden_layers=12, num_hidden_groups=1)
    assert {c.group_of_layer(i) for i in range(12)} == {0}


def test_init_follows_albert():
    c = preset("micro", initializer_range=0.05)
    m = HEADS["AlbertForPreTraining"](c)
    assert abs(m.backbone.encoder.groups[0].layers[0].qkv.weight.std().item() - 0.05) < 0.01
    assert torch.all(m.backbone.encoder.groups[0].layers[0].qkv.bias == 0)
    assert torch.all(m.backbone.embed.norm.weight == 1) and torch.all(m.backbone.embed.norm.bias == 0)
    assert torch.all(m.backbone.embed.word.weight[c.pad_token_id] == 0)
    assert torch.all(m.mlm.bias == 0)


def test_parameters_are_shared_across_layers():
    c = preset("base")
    m = HEADS["AlbertModel"](c)
    # ALBERT-base: ~11M parameters for 12 layers (BERT-base has ~108M).
    assert 11_000_000 < m.num_parameters() < 12_500_000
    assert m.flops_per_token(128) > 6 * 12 * (4 * 768 * 768 + 2 * 768 * 3072)


def test_layer_depths_for_layerwise_lr_decay():
    m = HEADS["AlbertForSequenceClassification"](preset("micro", num_hidden_layers=4, num_hidden_groups=2))
    d = m.layer_depths()
    assert d["backbone.embed.word.weight"] == 0
    assert d["backbone.encoder.groups.0.layers.0.qkv.weight"] == 1
    assert d["backbone.encoder.groups.1.layers.0.qkv.weight"] == 2
    assert d["classifier.weight"] == 3 and d["backbone.pooler.weight"] == 3
    assert set(d) == {n for n, _ in m.named_parameters()}


def test_attention_leaves_cudnn_out_unless_asked(monkeypatch):
    # cuDNN's attention builds an execution graph per new shape (bench/README.md, H200 run of
    # 2026-11-28): the default "sdpa" calls SDPA with cuDNN's backend switched off, "sdpa-cudnn"
    # leaves torch's choice alone; both compute the same attention.
    import albert.model as model_module

    seen = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append((torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled()))
        return real(*args, **kwargs)

    monkeypatch.setattr(model_module.F, "scaled_dot_product_attention", spy)
    monkeypatch.setattr(model_module, "CUDNN_DEVICES", ("cpu", "cuda"))  # as a CUDA tensor would be treated
    torch.manual_seed(0)
    m = HEADS["AlbertModel"](preset("micro", num_hidden_layers=2)).eval()
    ids = torch.randint(5, 100, (2, 9))
    with torch.no_grad():
        default = m(input_ids=ids).last_hidden_state
        m.set_attention_impl("sdpa-cudnn")
        free = m(input_ids=ids).last_hidden_state
    assert seen == [(False, True)] * 2 + [(True, True)] * 2
    assert torch.backends.cuda.cudnn_sdp_enabled()  # restored after each call
    torch.testing.assert_close(default, free, rtol=0, atol=0)
    with pytest.raises(Exception, match="sdpa, sdpa-cudnn, eager"):
        m.set_attention_impl("cudnn")
    # On a CPU, where there is no cuDNN kernel to leave out, the backends are not touched.
    monkeypatch.setattr(model_module, "CUDNN_DEVICES", ("cuda",))
    m.set_attention_impl("sdpa")
    torch.backends.cuda.enable_cudnn_sdp(False)
    try:
        with torch.no_grad():
            m(input_ids=ids)
    finally:
        torch.backends.cuda.enable_cudnn_sdp(True)
    assert seen[4:] == [(False, True)] * 2  # what was set outside is what SDPA saw


def test_qkv_gradients_are_stacked_without_a_second_copy():
    # The q/k/v split's backward stacks the three gradients into the fused matmul's layout; with
    # the split taken from a permutation it also cloned them into that layout, once per layer
    # application (bench/README.md, the H200 profile of 2026-11-28).
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    m = HEADS["AlbertForTokenClassification"](preset("micro", num_hidden_layers=3, num_labels=3))
    ids = torch.randint(5, 100, (2, 9))
    loss = m(input_ids=ids, labels=torch.randint(0, 3, (2, 9))).loss
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss.backward()
    counts = {a.key: a.count for a in prof.key_averages()}
    assert counts.get("aten::stack", 0) == 3 and counts.get("aten::clone", 0) == 0, counts
