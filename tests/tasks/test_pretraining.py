"""The held-out pretraining scores, on hand-made batches whose answers are known."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from albert.tasks.pretraining import HeldOut
from albert.tokenizer import MASK_ID

VOCAB = 12


class Rows:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, idx):
        return list(idx)


def collate(rows, epoch, indices):
    """Two rows of 6 tokens, three masked positions each: shown as [MASK], as themselves (kept)
    and as another token (random); the labels are the original tokens."""
    input_ids = torch.tensor([[2, 7, MASK_ID, 8, 9, 3], [2, MASK_ID, 10, 11, 6, 3]])[: len(rows)]
    positions = torch.tensor([[2, 3, 4], [1, 2, 4]])[: len(rows)]
    labels = torch.tensor([[5, 8, 11], [7, 10, 9]])[: len(rows)]
    return {"input_ids": input_ids, "mlm_positions": positions, "mlm_labels": labels,
            "sentence_order_label": torch.tensor([0, 1])[: len(rows)]}


class Copier(torch.nn.Module):
    """Predicts the token each masked position shows; `answer_masks` also knows the [MASK] ones."""

    def __init__(self, answer_masks: bool) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.answer_masks = answer_masks

    def forward(self, input_ids, mlm_positions, mlm_labels, sentence_order_label):
        shown = input_ids.gather(1, mlm_positions)
        guess = torch.where((shown == MASK_ID) & self.answer_masks, mlm_labels, shown)
        return SimpleNamespace(mlm_logits=torch.nn.functional.one_hot(guess, VOCAB).float() * 10,
                               sop_logits=torch.zeros(len(input_ids), 2))


@pytest.mark.parametrize("answer_masks, overall, at_masks", [(False, 2 / 6, 0.0), (True, 4 / 6, 1.0)])
def test_masked_accuracy_counts_only_positions_shown_as_mask(answer_masks, overall, at_masks):
    # Per row: one [MASK], one kept (copying is right), one random (copying is wrong).
    scores = HeldOut(Rows(2), collate, batch_size=2)(Copier(answer_masks))
    assert scores["mlm_accuracy"] == pytest.approx(overall)
    assert scores["mlm_masked_accuracy"] == pytest.approx(at_masks)
