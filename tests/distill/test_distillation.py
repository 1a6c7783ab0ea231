"""DistillationLoss against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from xiaonet.distill.distillation import DistillationLoss


def one_sample(values):
    """(batch=1, classes=3, samples=1) tensor."""
    return torch.tensor(values, dtype=torch.float64).reshape(1, 3, 1)


def test_hard_term_is_cross_entropy():
    logits = one_sample([0.0, 0.0, math.log(2.0)])  # softmax = 1/4, 1/4, 1/2
    labels = one_sample([1.0, 0.0, 0.0])
    loss = DistillationLoss(alpha=0.0)(logits, labels=labels)
    assert loss.item() == pytest.approx(math.log(4.0))


def test_soft_term_is_temperature_scaled_kl():
    logits = one_sample([0.0, 0.0, 0.0])  # student uniform at any temperature
    teacher = one_sample([0.5, 0.25, 0.25])
    t = 2.0
    # teacher at T: proportional to p ** (1 / T)
    q = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64) ** (1 / t)
    q = q / q.sum()
    expected = float((q * torch.log(q / (1 / 3))).sum()) * t * t
    loss = DistillationLoss(alpha=1.0, temperature=t)(logits, teacher=teacher)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_soft_term_is_zero_when_student_matches_teacher():
    teacher = one_sample([0.7, 0.2, 0.1])
    logits = torch.log(teacher)
    assert DistillationLoss(alpha=1.0, temperature=4.0)(logits, teacher=teacher).item() == pytest.approx(0, abs=1e-9)


def test_alpha_mixes_and_masks_select_windows():
    logits = torch.zeros(2, 3, 1, dtype=torch.float64)
    teacher = torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64).reshape(2, 3, 1)
    labels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64).reshape(2, 3, 1)
    criterion = DistillationLoss(alpha=0.25, temperature=1.0)
    soft = float(0.5 * math.log(1.5) + 0.5 * math.log(0.75))  # KL(teacher0 || uniform)
    hard = math.log(3.0)
    # Window 0 has teacher labels only, window 1 analyst labels only.
    loss = criterion(logits, teacher, torch.tensor([True, False]), labels, torch.tensor([False, True]))
    assert loss.item() == pytest.approx(0.25 * soft + 0.75 * hard)
    # No analyst labels anywhere in the batch: the soft term alone.
    loss = criterion(logits, teacher, torch.tensor([True, False]), labels, torch.tensor([False, False]))
    assert loss.item() == pytest.approx(soft)


def test_gradients_flow_and_bad_arguments_fail():
    logits = torch.zeros(1, 3, 5, requires_grad=True)
    teacher = torch.full((1, 3, 5), 1 / 3)
    teacher[:, 0] = 0.8
    teacher[:, 1:] = 0.1
    DistillationLoss()(logits, teacher=teacher).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="alpha"):
        DistillationLoss(alpha=1.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=0)
    with pytest.raises(ValueError, match="needs teacher probabilities or labels"):
        DistillationLoss()(logits)
