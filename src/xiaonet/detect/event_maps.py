"""One map per detected event (``xiaonet detect --plot DIR``): the stations whose picks were
associated (coloured by P residual), the stations without an associated pick, the epicentre
with its one-sigma ellipse, and the reference (catalog) epicentre where one is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xiaonet.detect.catalog import KM_PER_DEGREE
from xiaonet.detect.uncertainty import CONFIDENCE


def plot_event(detection, event, path: str | Path, reference=None, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse
    from matplotlib.ticker import MaxNLocator

    stations = detection.stations
    picks = detection.picks.loc[event.pick_rows]
    picked = set(picks["id"])
    p_residual = picks[picks["phase"] == "P"].set_index("id")["residual"]
    lats, lons = stations.latitude, stations.longitude
    # the map covers the picked stations, the epicentre and the reference, with a margin
    in_lat = [event.latitude, *[lats[i] for i, s in enumerate(stations.ids) if s in picked]]
    in_lon = [event.longitude, *[lons[i] for i, s in enumerate(stations.ids) if s in picked]]
    if reference is not None:
        in_lat.append(reference.latitude)
        in_lon.append(reference.longitude)
    pad_lat = max(0.2 * (max(in_lat) - min(in_lat)), 0.02)
    pad_lon = max(0.2 * (max(in_lon) - min(in_lon)), 0.02)
    box = (min(in_lon) - pad_lon, max(in_lon) + pad_lon, min(in_lat) - pad_lat, max(in_lat) + pad_lat)
    inside = (lons >= box[0]) & (lons <= box[1]) & (lats >= box[2]) & (lats <= box[3])
    is_picked = np.array([s in picked for s in stations.ids])

    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(lons[inside & ~is_picked], lats[inside & ~is_picked], marker="^", s=22, facecolors="none",
               edgecolors="0.55", linewidths=0.7, label=f"no associated pick ({int((inside & ~is_picked).sum())})")
    order = [i for i, s in enumerate(stations.ids) if s in picked]
    colour = np.array([p_residual.get(stations.ids[i], np.nan) for i in order], float)
    limit = max(float(np.nanmax(np.abs(colour))) if np.isfinite(colour).any() else 0.1, 0.05)
    points = ax.scatter(lons[order], lats[order], marker="^", s=30, c=np.nan_to_num(colour), cmap="coolwarm",
                        vmin=-limit, vmax=limit, edgecolors="k", linewidths=0.4,
                        label=f"associated picks ({len(order)} stations)")
    fig.colorbar(points, ax=ax, label="P residual (s)", shrink=0.8)
    errors = event.errors
    if np.isfinite(errors.major_km):
        scale_lon = KM_PER_DEGREE * np.cos(np.radians(event.latitude))
        # the ellipse is drawn in degrees; its axes are km, the azimuth from north
        ax.add_patch(Ellipse((event.longitude, event.latitude), width=2 * errors.minor_km / scale_lon,
                             height=2 * errors.major_km / KM_PER_DEGREE, angle=-errors.major_azimuth,
                             fill=False, color="red", linewidth=1.0, label=f"{CONFIDENCE:.0%} error ellipse"))
    ax.plot(event.longitude, event.latitude, "*", color="red", markersize=16, markeredgecolor="k",
            label=f"epicentre, depth {event.depth_km:.1f} km")
    if reference is not None:
        depth = f", depth {reference.depth_km:.1f} km" if reference.depth_km is not None else ""
        ax.plot(reference.longitude, reference.latitude, "X", color="gold", markersize=12, markeredgecolor="k",
                label=f"catalog epicentre{depth}")
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_aspect(1.0 / np.cos(np.radians(event.latitude)))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    ax.ticklabel_format(useOffset=False)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.set_title(title or (f"event {event.number}: {event.time.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} UTC, "
                           f"{event.n_p} P + {event.n_s} S picks"), fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
