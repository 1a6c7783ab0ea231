"""What a training run leaves in its folder besides weights: the code version, the per-epoch
history (JSON and CSV) and the training curves."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path


# --- run folder ----------------------------------------------------------------------------


def code_version() -> str:
    from xiaonet import __version__

    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"], capture_output=True, text=True,
            cwd=Path(__file__).resolve().parent, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ""
    return f"xiaonet {__version__}" + (f" git {described}" if described else "")


def write_history(history: list[dict], run_dir: Path) -> None:
    (run_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    if history:
        keys = list(dict.fromkeys(key for row in history for key in row))  # rows may lack scores
        with open(run_dir / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys, restval="")
            writer.writeheader()
            writer.writerows(history)


def plot_curves(history: list[dict], path: Path) -> None:
    """Training loss and validation (or dev) F1 per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.semilogy(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("distillation loss")
    ax_loss.legend()
    for split in ("val", "dev"):
        scored = [h for h in history if f"{split}_p_f1" in h]  # every score_every epochs
        if scored:
            for key, label in ((f"{split}_p_f1", f"{split} P F1"), (f"{split}_s_f1", f"{split} S F1")):
                ax_f1.plot([h["epoch"] for h in scored], [h[key] for h in scored], marker="o", label=label)
    ax_f1.set_xlabel("epoch")
    ax_f1.set_ylabel("F1 (0.5 s tolerance)")
    ax_f1.set_ylim(0, 1)
    if ax_f1.lines:
        ax_f1.legend()
    else:  # a refit scores no split per epoch
        ax_f1.text(0.5, 0.5, "no split scored per epoch\n(epoch fixed beforehand)", ha="center",
                   va="center", transform=ax_f1.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
