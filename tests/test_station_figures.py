"""Station figures: a long record gets an overview and one panel per strongest pick group
(the loudest event among them), --plot-window draws part of a record, bad windows are refused."""

from __future__ import annotations

import numpy as np
import obspy
import pytest
from seisbench.util import Pick

from xiaonet.cli import main
from xiaonet.picking.station_figures import (PlotWindowError, parse_plot_window, pick_groups, plot_station,
                                             strongest_groups, window_times)

START = obspy.UTCDateTime("2024-02-03T05:00:00")


def record(duration_s: float, events: list[tuple[float, float]], rng) -> obspy.Stream:
    """Three components of noise with (time, amplitude) events, each a P then an S 1 s later."""
    n = int(duration_s * 20)
    stream = obspy.Stream()
    for channel in ("EHE", "EHN", "EHZ"):
        data = rng.normal(0, 1.0, n)
        for at, amplitude in events:
            for phase_delay, size in ((0.0, 0.3), (1.0, 1.0)):
                i = int((at + phase_delay) * 20)
                data[i:i + 60] += size * amplitude * np.sin(np.arange(60)) * np.exp(-np.arange(60) / 20)
        stream += obspy.Trace(data, {"network": "XX", "station": "LONG", "channel": channel,
                                     "sampling_rate": 20.0, "starttime": START})
    return stream


def picks_at(events, probability=0.9):
    return [Pick("XX.LONG.", START + at + delay, START + at + delay + 0.2, START + at + delay, probability, phase)
            for at, _ in events for phase, delay in (("P", 0.0), ("S", 1.0))]


def test_pick_groups_and_the_strongest_with_the_loudest_event():
    events = [(60.0 * k, 10.0) for k in range(1, 12)]
    picks = picks_at(events[:10], 0.9) + picks_at(events[10:], 0.3)  # the last: loud, barely picked
    groups = pick_groups(picks)
    assert len(groups) == 11 and all(len(g) == 2 for g in groups)
    chosen = strongest_groups(groups, 4, loudest=START + 660.5)
    assert len(chosen) == 4 and chosen[-1] is groups[-1]  # the loudest event is drawn
    assert [pick.start_time for g in chosen for pick in g] == sorted(pick.start_time for g in chosen for pick in g)


def test_long_record_figure_and_a_window_of_it(tmp_path):
    rng = np.random.default_rng(0)
    events = [(100.0 + 90.0 * k, 20.0 if k == 3 else 5.0) for k in range(10)]
    stream = record(1200.0, events, rng)
    annotations = obspy.Stream([obspy.Trace(np.zeros(1200 * 20), {"channel": f"X_{p}", "sampling_rate": 20.0,
                                                                    "starttime": START}) for p in "PSN"])
    long_path = plot_station(stream, annotations, picks_at(events), tmp_path / "long.png")
    window_path = plot_station(stream, annotations, picks_at(events), tmp_path / "part.png",
                               window=parse_plot_window("370/420"))
    import matplotlib.image

    tall, short = (matplotlib.image.imread(str(p)).shape[0] for p in (long_path, window_path))
    assert tall > 2 * short  # overview and eight event panels, against one 50 s window
    with pytest.raises(PlotWindowError, match="no data"):
        plot_station(stream, annotations, [], tmp_path / "none.png", window=("2000", "2100"))


def test_plot_window_parsing():
    assert parse_plot_window("600/900") == ("600", "900")
    start, end = window_times(parse_plot_window("2024-02-03T05:10:00/700"), START)
    assert start == START + 600 and end == START + 700
    for bad in ("600", "a/b", "600/"):
        with pytest.raises(PlotWindowError, match="--plot-window"):
            parse_plot_window(bad)
    with pytest.raises(PlotWindowError, match="not after the start"):
        window_times(("900", "600"), START)


def test_pick_refuses_a_bad_plot_window(tmp_path, capsys):
    assert main(["pick", "--example", "--plot-window", "10-20", "--plot", str(tmp_path / "figures")]) == 2
    assert "--plot-window '10-20': expected START/END" in capsys.readouterr().err
