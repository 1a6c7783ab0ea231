"""Figures for magnitudes and the reference comparison (``xiaonet detect --plot DIR``): each
event's station magnitudes against hypocentral distance, and the detected catalog against the
reference (a map of both, and ML against the reference magnitude)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig.clf()
    _pyplot().close(fig)
    return path


def plot_station_magnitudes(result, path, title: str = "", reference_magnitude: float | None = None) -> Path:
    """Station ML against hypocentral distance, with the event's median and spread: a trend with
    distance says the distance correction does not fit the region."""
    plt = _pyplot()
    distance = np.array([s.distance_km for s in result.stations])
    ml = np.array([s.ml for s in result.stations])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(distance, ml, s=10, alpha=0.6, color="tab:blue", edgecolors="none",
               label=f"{len(ml)} horizontal channels at {result.n_stations} stations")
    ax.axhline(result.ml, color="tab:blue", linewidth=1.2, label=f"ML {result.ml:.2f} (median)")
    ax.axhspan(result.ml - result.spread, result.ml + result.spread, color="tab:blue", alpha=0.12,
               label=f"± {result.spread:.2f} (1.4826 MAD)")
    if reference_magnitude is not None:
        ax.axhline(reference_magnitude, color="k", linestyle="--", linewidth=1.0,
                   label=f"reference {reference_magnitude:.2f}")
    ax.set_xlabel("hypocentral distance (km)")
    ax.set_ylabel("station ML")
    ax.set_title(title or f"station magnitudes, distance correction {result.correction.name}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_comparison(comparison, path, stations=None) -> Path:
    """Left: reference and detected epicentres (matched pairs joined, missed and new marked);
    right: detected ML against the reference magnitude for matched events with both."""
    plt = _pyplot()
    fig, (ax_map, ax_mag) = plt.subplots(1, 2, figsize=(11, 5))
    if stations is not None:
        ax_map.scatter(stations.longitude, stations.latitude, marker="^", s=8, color="0.75", label="stations")
    for m in comparison.matches:
        ax_map.plot([m.reference.longitude, m.event.longitude], [m.reference.latitude, m.event.latitude],
                    color="0.3", linewidth=0.8)
    groups = [([m.reference for m in comparison.matches], "X", "gold", "reference, matched"),
              ([m.event for m in comparison.matches], "*", "red", "detected, matched"),
              (comparison.missed, "X", "none", "reference, missed"),
              ([e for e, _ in comparison.new], "*", "none", "detected, new")]
    for events, marker, colour, label in groups:
        if events:
            ax_map.scatter([e.longitude for e in events], [e.latitude for e in events], marker=marker, s=120,
                           facecolors=colour, edgecolors="k", linewidths=0.8, label=f"{label} ({len(events)})",
                           zorder=3)
    latitudes = [e.latitude for events, *_ in groups for e in events] or [0.0]
    ax_map.set_aspect(1.0 / np.cos(np.radians(np.mean(latitudes))))
    ax_map.set_xlabel("longitude (°)")
    ax_map.set_ylabel("latitude (°)")
    ax_map.ticklabel_format(useOffset=False)
    ax_map.legend(fontsize=8, loc="best")
    ax_map.set_title(comparison.summary().split(";")[0], fontsize=9)
    pairs = [(m.reference.magnitude, m.ml) for m in comparison.matches
             if m.reference.magnitude is not None and m.ml is not None]
    if pairs:
        ref, ml = np.array(pairs).T
        low, high = min(ref.min(), ml.min()) - 0.5, max(ref.max(), ml.max()) + 0.5
        ax_mag.plot([low, high], [low, high], color="0.5", linestyle="--", linewidth=1.0, label="1:1")
        ax_mag.scatter(ref, ml, s=40, color="tab:red", edgecolors="k", zorder=3,
                       label=f"{len(pairs)} matched event(s), median ML - reference {np.median(ml - ref):+.2f}")
        ax_mag.set_xlim(low, high)
        ax_mag.set_ylim(low, high)
        ax_mag.set_aspect("equal")
        ax_mag.legend(fontsize=8, loc="upper left")
    else:
        ax_mag.text(0.5, 0.5, "no matched event with both magnitudes", ha="center", va="center",
                    transform=ax_mag.transAxes)
    types = sorted({m.reference.magnitude_type for m in comparison.matches if m.reference.magnitude_type})
    ax_mag.set_xlabel("reference magnitude" + (f" ({', '.join(types)})" if types else ""))
    ax_mag.set_ylabel("detected ML")
    ax_mag.grid(alpha=0.3)
    return _save(fig, path)
