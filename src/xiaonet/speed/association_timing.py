"""Association speed (``xiaonet benchmark association``): seconds to associate and locate a
synthetic pick table of ``n_picks`` picks (events on a network, 10 % false picks), the
median of ``repeats`` runs, with how many of the true events were found."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass


@dataclass
class AssociationBenchmark:
    n_picks: int
    n_stations: int
    n_events: int
    model: str
    seconds: list[float]
    found: int
    matched: int

    def lines(self) -> list[str]:
        median = statistics.median(self.seconds)
        return [
            f"association benchmark: {self.n_picks} picks ({self.n_events} synthetic events on "
            f"{self.n_stations} stations, 10% false picks), {self.model}, 1 thread",
            f"  seconds per run: median {median:.2f}, min {min(self.seconds):.2f}, max {max(self.seconds):.2f} "
            f"({len(self.seconds)} runs); {self.n_picks / median:,.0f} picks/s",
            f"  events found: {self.found} ({self.matched} of {self.n_events} true events within 2 s and 5 km)",
        ]


def run_association_benchmark(n_picks: int = 10_000, n_stations: int = 50, repeats: int = 3, model=None,
                              seed: int = 0) -> AssociationBenchmark:
    from obspy.geodetics import gps2dist_azimuth

    from xiaonet.detect.association import AssociationConfig, associate, picks_frame
    from xiaonet.detect.synthetic import random_events, synthetic_network, synthetic_picks
    from xiaonet.detect.velocity import HomogeneousModel

    model = model or HomogeneousModel(6.0, 3.5)
    extent = 60.0
    n_true = int(round(0.9 * n_picks))
    n_events = max(1, n_true // (2 * n_stations))
    stations = synthetic_network(n_stations, extent_km=extent, seed=seed)
    events = random_events(n_events, duration_s=n_events * 30.0, extent_km=extent, seed=seed)
    rows = synthetic_picks(stations, events, model, seed=seed, false_picks=n_picks - 2 * n_stations * n_events,
                           duration_s=n_events * 30.0)
    frame = picks_frame(rows)
    config = AssociationConfig(margin_km=20.0)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        detection = associate(frame, stations, model, config)
        seconds.append(time.perf_counter() - start)
    matched = 0
    for truth in events:
        near = [e for e in detection.events if abs(e.time - truth.time) < 2.0 and
                gps2dist_azimuth(e.latitude, e.longitude, truth.latitude, truth.longitude)[0] < 5000.0]
        matched += bool(near)
    return AssociationBenchmark(len(rows), n_stations, n_events, model.describe(), seconds,
                                len(detection.events), matched)

