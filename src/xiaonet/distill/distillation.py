"""The distillation loss: teacher probabilities at temperature T plus analyst labels.

For student logits ``z`` (batch, 3, samples), teacher probabilities ``q`` and hard label
probabilities ``y`` (both (batch, 3, samples), P/S/noise):

* soft term: ``T**2 * KL(softmax(log q / T) || softmax(z / T))``, averaged over samples
  and over the windows that have teacher labels;
* hard term: ``-sum(y * log_softmax(z))`` (cross-entropy with the label curves), averaged
  over samples and over the windows that have analyst labels;
* loss = ``alpha * soft + (1 - alpha) * hard``. When a batch has no window with one kind
  of label, that term is 0 and the other term takes its full weight.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Teacher probabilities are clipped here before the logarithm.
PROBABILITY_FLOOR = 1e-6


class DistillationLoss(nn.Module):
    """Soft-target (teacher) plus hard-label (analyst) loss, weighted by ``alpha``.

    :param alpha: weight of the soft term (1 - alpha for the hard term).
    :param temperature: softening temperature T of teacher and student; the soft term is
        scaled by T**2 so its gradients keep their size as T changes (Hinton et al. 2015).
    """

    def __init__(self, alpha: float = 0.5, temperature: float = 4.0):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.alpha = float(alpha)
        self.temperature = float(temperature)

    def __repr__(self) -> str:
        return f"DistillationLoss(alpha={self.alpha}, temperature={self.temperature})"

    def soft_term(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """Per-window T**2-scaled KL divergence, shape (batch,)."""
        t = self.temperature
        teacher_log = torch.log(teacher.clamp_min(PROBABILITY_FLOOR)) / t
        teacher_log = teacher_log - torch.logsumexp(teacher_log, dim=1, keepdim=True)
        student_log = F.log_softmax(logits / t, dim=1)
        kl = (teacher_log.exp() * (teacher_log - student_log)).sum(dim=1)
        return kl.mean(dim=-1) * t * t

    @staticmethod
    def hard_term(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-window cross-entropy with label curves, shape (batch,)."""
        return -(labels * F.log_softmax(logits, dim=1)).sum(dim=1).mean(dim=-1)

    def forward(self, logits: torch.Tensor, teacher: torch.Tensor | None = None,
                teacher_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                label_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Total loss. Masks are (batch,) booleans saying which windows have each target."""
        soft = hard = None
        if teacher is not None:
            mask = torch.ones(len(logits), dtype=torch.bool) if teacher_mask is None else teacher_mask
            if mask.any():
                soft = self.soft_term(logits[mask], teacher[mask]).mean()
        if labels is not None:
            mask = torch.ones(len(logits), dtype=torch.bool) if label_mask is None else label_mask
            if mask.any():
                hard = self.hard_term(logits[mask], labels[mask]).mean()
        if soft is None and hard is None:
            raise ValueError("DistillationLoss needs teacher probabilities or labels for at least one window")
        if soft is None:
            return hard
        if hard is None:
            return soft
        return self.alpha * soft + (1.0 - self.alpha) * hard
