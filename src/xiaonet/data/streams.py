"""ObsPy streams to model-ready arrays, the way SeisBench's ``annotate`` builds them.

Only this module and :meth:`xiaonet.edge.EdgePicker.pick` use ObsPy, and they import it on
use: the edge runtime itself runs on numpy arrays. The steps follow
``WaveformModel.annotate``: the teacher's stream filter, resampling to the model's rate,
start times aligned to the absolute sample grid (as SeisBench's ``_align_fractional_samples``, by
the project's one rule, :func:`xiaonet.edge.windowing.absolute_index`), one row
per component in the model's order (``1``/``2`` stand in for ``N``/``E``), zeros where a
component is missing, and the mean sub-sample offset added back to the start time.
"""

from __future__ import annotations

import numpy as np

#: Horizontal codes SeisBench treats as the same component (``flexible_horizontal_components``).
FLEXIBLE_COMPONENTS = {"1": "N", "2": "E"}


def component_index(component_order: str) -> dict[str, int]:
    """Row of each component code, with ``1``/``2`` and ``N``/``E`` standing for each other
    (SeisBench's flexible rule); the one alias table of the project.

    >>> component_index("ZNE")
    {'Z': 0, 'N': 1, 'E': 2, '1': 1, '2': 2}
    """
    index = {c: i for i, c in enumerate(component_order)}
    for alias, code in FLEXIBLE_COMPONENTS.items():
        if code in index and alias not in index:
            index[alias] = index[code]
        elif alias in index and code not in index:
            index[code] = index[alias]
    return index


def filter_stream(stream, stream_filter: dict | None) -> None:
    """Apply a teacher's stream filter in place, e.g. ``{"type": "bandpass", "freqmin": 1, ...}``."""
    if stream_filter:
        options = dict(stream_filter)
        stream.filter(options.pop("type"), **options)


def resample_stream(stream, sampling_rate: float, zerophase: bool = False) -> None:
    """Resample in place to ``sampling_rate`` as SeisBench does (decimate when it can)."""
    for trace in stream:
        rate = trace.stats.sampling_rate
        if rate == sampling_rate:
            continue
        if rate % sampling_rate == 0:
            trace.filter("lowpass", freq=sampling_rate * 0.5, zerophase=zerophase)
            trace.decimate(int(rate / sampling_rate), no_filter=True)
        else:
            trace.resample(sampling_rate, no_filter=True)


def stream_to_array(stream, component_order: str, sampling_rate: float):
    """One instrument's contiguous stream as ``(start_time, data (components, samples), trace_id)``.

    Returns None when no trace has a component of ``component_order``.
    """
    from xiaonet.edge.windowing import absolute_index, grid_time

    index = component_index(component_order)
    traces = [tr for tr in stream if tr.stats.channel[-1:] in index and tr.stats.npts > 0]
    if not traces:
        return None
    # Each start on the absolute grid by the one rule of every picker path (exact, from the
    # nanoseconds), its sub-sample offset kept: the rows are placed by whole sample indices
    firsts = [absolute_index(tr.stats.starttime, sampling_rate) for tr in traces]
    offsets = [tr.stats.starttime - grid_time(i, sampling_rate) for tr, i in zip(traces, firsts)]
    first_index = min(firsts)
    n_samples = max(i + tr.stats.npts for i, tr in zip(firsts, traces)) - first_index
    # float32: every window is cast to float32 for the model anyway (as SeisBench does).
    data = np.zeros((len(component_order), n_samples), dtype=np.float32)
    for first, trace in zip(firsts, traces):
        values = np.asarray(trace.data)
        data[index[trace.stats.channel[-1]], first - first_index : first - first_index + values.size] = values
    s = traces[0].stats
    trace_id = f"{s.network}.{s.station}.{s.location}"
    return grid_time(first_index, sampling_rate) + float(np.mean(offsets)), data, trace_id
