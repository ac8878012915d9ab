"""Evaluation of pretraining: the held-out MLM and SOP scores, and the numbers logged on training
steps. (The fine-tuning tasks' evaluations are beside it, in this package.)"""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

from ..tokenizer import MASK_ID


class HeldOut:
    """Held-out MLM loss/accuracy and SOP loss/accuracy, with the same masks every time.

    The held-out labels need not be balanced: one-sentence chunks always get label 1 (segment B
    from another document), and short held-out documents have many of them. So besides plain
    accuracy it reports the majority-class share (what answering the commoner label scores) and
    balanced accuracy (mean recall over the two labels), whose chance level is 0.5 whatever the
    label shares.

    MLM accuracy counts every masked position, and one in ten of them shows the model its own
    answer (BERT's 80/10/10 rule): copying the input there and guessing the commonest piece at
    [MASK] already scores ~14% on English Wikipedia. `mlm_masked_accuracy` counts only the
    positions shown as [MASK], where the answer must come from the context ('the' everywhere: ~5%)."""

    # What __call__ reports: the names pretrain.py's --metric may choose from.
    METRICS = ("mlm_loss", "mlm_accuracy", "mlm_perplexity", "mlm_masked_accuracy", "sop_loss", "sop_accuracy",
               "sop_balanced_accuracy", "sop_majority", "loss")

    def __init__(self, dataset, collate, batch_size: int):
        self.dataset, self.collate, self.batch_size = dataset, collate, batch_size

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        mlm_loss = mlm_correct = mlm_count = masked_correct = masked_count = sop_loss = rows = 0.0
        sop_pred, sop_gold = [], []
        for start in range(0, len(self.dataset), self.batch_size):
            idx = list(range(start, min(start + self.batch_size, len(self.dataset))))
            examples = self.dataset.__getitems__(idx)
            batch = {k: v.to(device) for k, v in self.collate(examples, epoch=0, indices=idx).items()}
            out = model(**batch)
            # mlm_logits (B, P, V) at the masked-position slots; label -100 on unused slots.
            labels = batch["mlm_labels"]
            scored = labels != -100
            mlm_loss += float(torch.nn.functional.cross_entropy(out.mlm_logits.flatten(0, 1).float(), labels.flatten(),
                                                                reduction="sum"))
            hits = (out.mlm_logits.argmax(-1) == labels) & scored
            mlm_correct += float(hits.sum())
            mlm_count += int(scored.sum())
            shown_mask = (batch["input_ids"].gather(1, batch["mlm_positions"]) == MASK_ID) & scored
            masked_correct += float((hits & shown_mask).sum())
            masked_count += int(shown_mask.sum())
            sol = batch["sentence_order_label"]
            sop_loss += float(torch.nn.functional.cross_entropy(out.sop_logits.float(), sol, reduction="sum"))
            sop_pred.append(out.sop_logits.argmax(-1).cpu())
            sop_gold.append(sol.cpu())
            rows += len(idx)
        model.train(was_training)
        mlm = mlm_loss / max(mlm_count, 1)
        pred, gold = (torch.cat(x).numpy() if x else np.zeros(0, dtype=np.int64) for x in (sop_pred, sop_gold))
        sop_correct = float((pred == gold).sum())
        return {"mlm_loss": mlm, "mlm_accuracy": mlm_correct / max(mlm_count, 1), "mlm_perplexity": math.exp(min(mlm, 50)),
                "mlm_masked_accuracy": masked_correct / max(masked_count, 1),
                "sop_loss": sop_loss / max(rows, 1), "sop_accuracy": sop_correct / max(rows, 1),
                "sop_balanced_accuracy": float(balanced_accuracy_score(gold, pred)) if rows else 0.0,
                "sop_majority": float(np.bincount(gold).max() / rows) if rows else 0.0,
                "loss": mlm + sop_loss / max(rows, 1)}


def step_metrics(output, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Device tensors: the trainer's guard reads them with its own numbers, in one host sync, on
    # logging steps only (albert/train/guard.py).
    values: dict[str, torch.Tensor] = {}
    if output.mlm_loss is not None:
        labels = batch["mlm_labels"]
        scored = labels != -100
        values["mlm_loss"] = output.mlm_loss.detach().float()
        values["mlm_accuracy"] = ((output.mlm_logits.argmax(-1) == labels) & scored).sum() / scored.sum().clamp(min=1)
    if output.sop_loss is not None:
        values["sop_loss"] = output.sop_loss.detach().float()
        values["sop_accuracy"] = (output.sop_logits.argmax(-1) == batch["sentence_order_label"]).float().mean()
    return {k: v.float() for k, v in values.items()}
