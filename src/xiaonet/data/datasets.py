"""Training data: whole records from SeisBench datasets and continuous miniSEED
(:mod:`xiaonet.data.records`), the network and station split (:mod:`xiaonet.data.splits`),
and random training windows cut from them (:mod:`xiaonet.data.windows`). This module gathers
their names.

A :class:`Record` is one whole trace (a labelled dataset row, or one contiguous block of a
continuous file) as a (3, n) float32 array in ZNE order at the model's sampling rate, with
its analyst pick samples. Teacher probabilities are attached to records by
:mod:`xiaonet.distill.teacher_labels`; :class:`WindowSampler` then cuts waveform and labels together
at random offsets (in ``phasenet_ncedc2019`` the P pick is always at sample 3000, so fixed
windows would teach the student a position, not a phase).
"""

from __future__ import annotations

from xiaonet.data.records import (COMPONENT_ALIASES, COMPONENTS, DataError, Record,  # noqa: F401
                                  load_continuous_records, load_labelled_records, record_reference_picks,
                                  record_references, record_stream, resample)
from xiaonet.data.splits import DataBundle, choose_held_out_stations, load_data  # noqa: F401
from xiaonet.data.waveforms import NOT_WAVEFORM_SUFFIXES  # noqa: F401
from xiaonet.data.windows import (Window, WindowSampler, hard_label_curve, is_flat,  # noqa: F401
                                  phase_targets)
