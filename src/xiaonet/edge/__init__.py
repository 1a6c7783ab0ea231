"""Torch-free runtime: exported XiaoNet models on numpy + ONNX Runtime.

Importing this package never imports torch or SeisBench (ObsPy only when a stream is
picked), so it runs where only ``numpy`` and ``onnxruntime`` are installed::

    from xiaonet.edge import EdgePicker

    picker = EdgePicker("xiaonet-s.int8.onnx")          # written by `xiaonet export`
    picks = picker.pick(obspy.read("day.mseed"))        # ObsPy stream, gap-safe
    picks = picker.pick_array(data, start_time=0.0)     # or a (3, samples) ZNE array
"""

from xiaonet.edge.onnx_model import EdgeModel, EdgeModelError, EdgeModelMetadata
from xiaonet.edge.picker import EdgePicker
from xiaonet.edge.picks import EdgePick, picks_from_curve, trigger_onset
from xiaonet.edge.windowing import WindowStack, overlap_samples, window_offsets

__all__ = [
    "EdgeModel",
    "EdgeModelError",
    "EdgeModelMetadata",
    "EdgePicker",
    "EdgePick",
    "picks_from_curve",
    "trigger_onset",
    "WindowStack",
    "overlap_samples",
    "window_offsets",
]
