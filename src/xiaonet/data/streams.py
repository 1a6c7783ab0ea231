"""ObsPy streams prepared the way SeisBench's ``annotate`` prepares them, for every picker
path: the component alias table (``1``/``2`` stand in for ``N``/``E``), the teacher's stream
filter and resampling to the model's rate. Placing a stream on the model's absolute sample
grid is the runtime's (:func:`xiaonet.edge.windowing.stream_to_grid_array`). ObsPy is used
through the stream's own methods; this module imports nothing but the standard library.
"""

from __future__ import annotations


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
