"""The XiaoNet student: a compact 1-D U-Net phase picker that is a SeisBench ``WaveformModel``.

Design choices, each measured in the distillation prototype (see ``../shared/FINDINGS.md``):

* The network downsamples at once (a strided stem, then strides of 4) so most parameters sit
  at coarse time resolution, where they cost few multiply-accumulates per input sample, and
  nothing but the input and the output touches full resolution.
* No batch-norm layers (nothing to fold at export time) and transposed convolutions with
  ``kernel == stride`` for upsampling (no interpolation kernels).
* Normalisation happens inside :meth:`XiaoNet.forward`, so the exported ONNX graph is
  self-contained, and it is scale invariant down to amplitudes of 1e-20 (peak normalisation
  before the standard deviation is taken, and an epsilon *relative* to the largest channel
  instead of a fixed one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import seisbench.util as sbu
import torch
import torch.nn as nn
import torch.nn.functional as F
from seisbench.models import WaveformModel
from seisbench.models.base import GroupingHelper

PHASE_LABELS = "PSN"


# A channel varying by less than this fraction of its level (~8 float32 ulps) is constant.
CONSTANT_CHANNEL_RTOL = 1e-6


def demeaned_to_unit_peak(x: torch.Tensor) -> torch.Tensor:
    """Constant channels to zero, the others demeaned, all divided by the window's peak."""
    level = x.abs().amax(dim=-1, keepdim=True)
    spread = x.amax(dim=-1, keepdim=True) - x.amin(dim=-1, keepdim=True)
    varying = spread > CONSTANT_CHANNEL_RTOL * level
    x = torch.where(varying, x - x.mean(dim=-1, keepdim=True), torch.zeros_like(x))
    peak = x.abs().amax(dim=(-2, -1), keepdim=True)
    return x / torch.where(peak > 0, peak, torch.ones_like(peak))


def normalize_window(x: torch.Tensor) -> torch.Tensor:
    """Demean each channel and divide by its std plus 1e-3 x the largest channel std.

    The peak normalisation first keeps the arithmetic in float32 range for data in physical
    units (1e-20 squared underflows float32). All-zero channels stay zero, and so do constant
    channels (a DC offset, a dead or clipped stretch): a channel whose range is within a few
    float32 rounding steps of its level carries no signal, and demeaning it would leave only
    rounding residue that the division would amplify ~1e12 times.
    """
    x = demeaned_to_unit_peak(x)
    std = x.std(dim=-1, keepdim=True, unbiased=False)
    scale = std + 1e-3 * std.amax(dim=-2, keepdim=True) + 1e-12
    return x / scale


def normalize_causally(x: torch.Tensor) -> torch.Tensor:
    """:func:`normalize_window`, but each sample normalised by the data up to it only.

    A causal student must not see the future through its normalisation: a large S wave
    later in the window would otherwise shrink everything before it. Each sample is demeaned
    by the running mean and divided by the running RMS of the demeaned data up to it (plus
    1e-3 x the largest channel's). Only a pure scale (the window's peak, which cancels but for
    the 1e-12 floor) and the test for constant channels look at the whole window.
    """
    # the whole-window mean only conditions the running sums: x - running_mean(x) is unchanged
    x = demeaned_to_unit_peak(x)
    count = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    x = x - torch.cumsum(x, dim=-1) / count
    rms = torch.sqrt(torch.cumsum(x * x, dim=-1) / count)
    scale = rms + 1e-3 * rms.amax(dim=-2, keepdim=True) + 1e-12
    return x / scale


class ShortRecordGrouping(GroupingHelper):
    """SeisBench's grouping, but keeping records shorter than one window.

    SeisBench drops fragments shorter than ``in_samples``; a fully convolutional network
    can predict them whole, so only fragments under one second are dropped.
    """

    min_record_s = 1.0

    def group_stream(self, stream, strict, min_length_s, comp_dict):
        return super().group_stream(stream, strict, min(min_length_s, self.min_record_s), comp_dict)

    @staticmethod
    def _align_fractional_samples(stream) -> None:
        """SeisBench's alignment of trace starts to the absolute grid, by the project's one
        rule (:func:`xiaonet.edge.windowing.absolute_index`: exact, near-ties up), so the torch
        path places every component on the sample the ONNX, C and streaming paths do."""
        from xiaonet.edge.windowing import absolute_index, grid_time

        for trace in stream:
            aligned = grid_time(absolute_index(trace.stats.starttime, trace.stats.sampling_rate),
                                trace.stats.sampling_rate)
            trace.stats.t_offset = trace.stats.starttime - aligned
            trace.stats.starttime = aligned


class XiaoNet(WaveformModel):
    """Compact 1-D U-Net returning per-sample P / S / noise probabilities.

    :param window_len: Samples per prediction window (3001 = 30 s at 100 Hz).
    :param in_channels: Input components, ordered as ``component_order`` (default ZNE).
    :param num_phases: Output classes; always P, S, noise for the current heads.
    :param base_channels: Width after the strided stem; deeper levels are multiples.
    :param depth: Number of stride-``stride`` downsampling steps after the stem.
    :param stride: Downsampling factor per level.
    :param kernel_size: Kernel size of the convolutions at coarse levels.
    :param width_multipliers: Channel multipliers per level (length ``depth + 1``).
    :param lookahead_s: An early-warning student: trained to pick a sample from a window
        that ends ``lookahead_s`` seconds after it, and always run that way (every picker of
        this model streams it, see :class:`xiaonet.picking.pickers.ModelPicker`), so offline
        and streamed picks are the same. None: an offline student (whole windows).
    :param hop_s: Early-warning students: seconds between windows.
    :param confirm: Early-warning students: a pick is final once its probability falls below
        ``confirm`` x its peak (:func:`xiaonet.edge.picks.advance_trigger`).
    :param aligned_upsampling: Upsample with centred transposed convolutions (kernel
        ``2 * stride - 1``), so a coarse feature lands where the strided convolution took it
        from. The original ``kernel == stride`` upsampling puts it ``(stride - 1) / 2``
        samples late at every level (about 1 s at the coarsest level of a 3-level student),
        which the network must learn to undo and which cost it P-pick precision.
    :param causal: Early-warning students only: the probability of sample t depends on the
        samples up to t + ``lookahead_s`` and on nothing later, anywhere in the window
        (causal convolutions, upsampling delayed to the last complete coarse step, running
        normalisation, output read ``lookahead_s`` late). Training can then put the loss on
        every sample with enough data before it, not only on the few the streaming windows
        decide (:func:`xiaonet.distill.batches.decided_samples`).
    :param padded_start: Early-warning students only: a record's first samples are decided
        like all later ones, each by a window ending ``lookahead_s`` after it, the time before
        the record filled with each channel's mean
        (:func:`xiaonet.edge.windowing.fill_record_start`), so the first picks come ``hop_s``
        after the record starts instead of after its first whole window. Train such a student
        with ``train.record_start_share`` (windows whose record starts inside them).
    """

    #: Capabilities that other code asks for instead of the class name: any record length is
    #: predicted whole (the window length is free), and the input normalisation is part of
    #: ``forward()`` and so of the exported ONNX graph.
    fully_convolutional = True
    normalises_in_forward = True
    #: Windows on the absolute sample grid (:data:`xiaonet.edge.windowing.WINDOW_GRIDS`).
    window_grid = "absolute"

    _annotate_args = WaveformModel._annotate_args.copy()
    _annotate_args["*_threshold"] = ("Detection threshold for the provided phase", 0.3)
    _annotate_args["overlap"] = (_annotate_args["overlap"][0], 0.25)

    def __init__(
        self,
        window_len: int = 3001,
        in_channels: int = 3,
        num_phases: int = 3,
        base_channels: int = 4,
        depth: int = 3,
        stride: int = 4,
        kernel_size: int = 5,
        width_multipliers: tuple[int, ...] | list[int] | None = None,
        aligned_upsampling: bool = False,
        lookahead_s: float | None = None,
        hop_s: float = 0.1,
        confirm: float | None = 0.5,
        causal: bool = False,
        padded_start: bool = False,
        sampling_rate: float = 100.0,
        component_order: str = "ZNE",
        **kwargs: Any,
    ):
        if num_phases != len(PHASE_LABELS):
            raise ValueError(
                f"num_phases={num_phases} is not supported: XiaoNet predicts exactly "
                f"{len(PHASE_LABELS)} classes ({', '.join(PHASE_LABELS)})."
            )
        if width_multipliers is None:
            width_multipliers = tuple([1, 2, 3, 4, 5, 6][: depth + 1])
        width_multipliers = tuple(int(m) for m in width_multipliers)
        if len(width_multipliers) != depth + 1:
            raise ValueError(
                f"width_multipliers needs depth + 1 = {depth + 1} entries, got {width_multipliers}"
            )
        grouping = kwargs.pop("grouping", "instrument")
        if grouping != "instrument":
            raise ValueError(f"XiaoNet picks per instrument; grouping='{grouping}' is not supported")
        kwargs["grouping"] = ShortRecordGrouping("instrument")
        citation = (
            "XiaoNet: a lightweight phase picker distilled from PhaseNet and EQTransformer "
            "(this project)."
        )
        super().__init__(
            citation=citation,
            component_order=component_order,
            sampling_rate=sampling_rate,
            output_type="array",
            in_samples=window_len,
            pred_sample=(0, window_len),
            labels=PHASE_LABELS,
            **kwargs,
        )
        self.window_len = int(window_len)
        self.in_channels = int(in_channels)
        self.num_phases = int(num_phases)
        self.base_channels = int(base_channels)
        self.depth = int(depth)
        self.stride = int(stride)
        self.kernel_size = int(kernel_size)
        self.width_multipliers = width_multipliers
        self.aligned_upsampling = bool(aligned_upsampling)
        self.lookahead_s = None if lookahead_s is None else float(lookahead_s)
        self.hop_s = float(hop_s)
        self.confirm = None if confirm is None else float(confirm)
        self.causal = bool(causal)
        if self.causal and self.lookahead_s is None:
            raise ValueError("causal=True needs lookahead_s: only early-warning students are causal")
        self.padded_start = bool(padded_start)
        if self.padded_start and self.lookahead_s is None:
            raise ValueError("padded_start=True needs lookahead_s: only early-warning students pad record starts")
        if self.causal and self.aligned_upsampling:
            raise ValueError("causal=True needs aligned_upsampling=False: centred upsampling looks ahead")
        self.lookahead_samples = 0 if self.lookahead_s is None else int(round(self.lookahead_s * sampling_rate))
        if self.lookahead_s is not None and (self.lookahead_s + self.hop_s) * sampling_rate > window_len:
            raise ValueError(f"lookahead_s + hop_s ({self.lookahead_s} + {self.hop_s} s) must fit in "
                             f"one window of {window_len} samples")

        widths = [self.base_channels * m for m in width_multipliers]
        self.widths = widths
        k = self.kernel_size
        # Nothing runs at full resolution but the input and the output: the stem is strided
        # and the head is a transposed convolution, because per-sample work on narrow
        # tensors is what made the prototype slow (FINDINGS.md), not its MAC count.
        def pad(both_sides: int) -> int:  # causal students pad on the left in forward() instead
            return 0 if self.causal else both_sides

        self.stem = nn.Conv1d(in_channels, widths[0], 2 * stride, stride=stride, padding=pad(stride // 2))
        self.down = nn.ModuleList()
        self.down_refine = nn.ModuleList()
        for level in range(1, depth + 1):
            self.down.append(
                nn.Conv1d(widths[level - 1], widths[level], k, stride=stride, padding=pad(k // 2))
            )
            self.down_refine.append(nn.Conv1d(widths[level], widths[level], k, padding=pad(k // 2)))
        self.up = nn.ModuleList()
        self.up_merge = nn.ModuleList()
        for level in range(depth, 0, -1):
            if self.aligned_upsampling:  # output j*stride + [-(stride-1), stride-1]: centred
                up = nn.ConvTranspose1d(widths[level], widths[level - 1], 2 * stride - 1, stride=stride,
                                        padding=stride - 1, output_padding=stride - 1)
            else:
                up = nn.ConvTranspose1d(widths[level], widths[level - 1], stride, stride=stride)
            self.up.append(up)
            self.up_merge.append(
                nn.Conv1d(2 * widths[level - 1], widths[level - 1], 3, padding=pad(1))
            )
        self.head = nn.ConvTranspose1d(widths[0], num_phases, stride, stride=stride)

    @property
    def early_warning(self) -> dict | None:
        """How an early-warning student is streamed (None for an offline student)."""
        if self.lookahead_s is None:
            return None
        settings = {"lookahead_s": self.lookahead_s, "hop_s": self.hop_s, "confirm": self.confirm}
        if self.causal:
            settings["causal"] = True
        if self.padded_start:
            settings["padded_start"] = True
        return settings

    @property
    def total_stride(self) -> int:
        return self.stride ** (self.depth + 1)

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """Map (batch, channels, samples) waveforms to (batch, 3, samples) probabilities."""
        if self.causal:
            x = self._causal_logits(x)
        else:
            x = self._logits(x)
        if logits:
            return x
        return torch.softmax(x, dim=1)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        n_samples = x.shape[-1]
        x = normalize_window(x)
        pad = (-n_samples) % self.total_stride
        if pad:
            x = F.pad(x, (0, pad))
        x = F.relu(self.stem(x))
        skips = []
        for down, refine in zip(self.down, self.down_refine):
            skips.append(x)
            x = F.relu(refine(F.relu(down(x))))
        for up, merge, skip in zip(self.up, self.up_merge, reversed(skips)):
            x = F.relu(up(x))
            x = F.relu(merge(torch.cat([skip, x], dim=1)))
        return self.head(x)[..., :n_samples]

    def _causal_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The same network with every layer causal. A coarse step covers ``stride`` finer
        ones and is complete at the last of them, so upsampled features are delayed by
        ``stride - 1`` fine steps; the output of sample t is read ``lookahead_samples`` later
        (zeros past the window end)."""
        n_samples, s = x.shape[-1], self.stride
        ahead = self.lookahead_samples
        x = F.pad(x, (0, ahead + (-(n_samples + ahead)) % self.total_stride))
        x = normalize_causally(x)

        def left(t, n):
            return F.pad(t, (n, 0)) if n > 0 else t

        def delayed(t, n):
            return F.pad(t, (n, 0))[..., : t.shape[-1]] if n > 0 else t

        x = F.relu(self.stem(left(x, self.stem.kernel_size[0] - s)))
        skips = []
        for down, refine in zip(self.down, self.down_refine):
            skips.append(x)
            x = F.relu(down(left(x, down.kernel_size[0] - s)))
            x = F.relu(refine(left(x, refine.kernel_size[0] - 1)))
        for up, merge, skip in zip(self.up, self.up_merge, reversed(skips)):
            x = F.relu(delayed(up(x), s - 1))
            x = F.relu(merge(left(torch.cat([skip, x], dim=1), merge.kernel_size[0] - 1)))
        x = delayed(self.head(x), s - 1)
        return x[..., ahead: ahead + n_samples]

    # --- SeisBench integration -------------------------------------------------------------

    def _get_in_pred_samples(self, group):
        # Fully convolutional: a record shorter than one window is predicted as a whole
        # instead of being dropped (SeisBench's PhaseNet returns nothing for it).
        if group.n_samples < self.in_samples:
            return group.n_samples, (0, group.n_samples)
        return self.in_samples, self.pred_sample

    def _cut_fragments_array(self, group, argdict):
        """SeisBench's windows, but on the absolute sample grid (``window_grid``): the picks of
        a stretch of data do not depend on where its record starts (a file boundary, a gap)."""
        if self.window_grid != "absolute":
            return super()._cut_fragments_array(group, argdict)
        from seisbench.models.utils import TraceSegment

        from xiaonet.edge.windowing import absolute_index, grid_window_offsets

        in_samples, pred_sample = self._get_in_pred_samples(group)
        overlap = self._get_overlap(in_samples, argdict)
        first = absolute_index(group.start_time.timestamp, group.sampling_rate)
        offsets = grid_window_offsets(group.n_samples, in_samples, overlap, first)
        return [
            TraceSegment(data=group.data[..., offset: offset + in_samples],
                         key=(group.start_time.timestamp, "__".join(group.stations)),
                         start_time=group.start_time, window_offset=int(offset), n_windows=len(offsets),
                         stations=group.stations, in_samples=in_samples, pred_sample=pred_sample)
            for offset in offsets
        ]

    def stream_to_array(self, traces, argdict):
        """SeisBench's array of one instrument, with every component placed at its whole
        sample index on the absolute grid. SeisBench truncates ``(t - t_start) * rate``, and
        floating rounding (489.99 * 100 = 48998.9999...) then drops the last sample of some
        blocks and not of others, moving the end-aligned window by one sample."""
        from seisbench.models.utils import GroupedTraceData

        from xiaonet.edge.windowing import absolute_index, grid_time

        comp_dict, comp_order = self._build_comp_dict(
            traces, self._argdict_get_with_default(argdict, "flexible_horizontal_components"))
        traces = [tr for tr in traces if tr.id[-1] in comp_dict]
        rate = traces[0].stats.sampling_rate
        firsts = [absolute_index(tr.stats.starttime, rate) for tr in traces]  # aligned already
        first = min(firsts)
        data = np.zeros((len(comp_order), max(i + tr.stats.npts for i, tr in zip(firsts, traces)) - first))
        for i, trace in zip(firsts, traces):
            data[comp_dict[trace.id[-1]], i - first: i - first + trace.stats.npts] = trace.data
        offset = float(np.mean([tr.stats.get("t_offset", 0.0) for tr in traces]))
        stations = sorted({self._grouping.trace_id_without_component(tr) for tr in traces})
        return GroupedTraceData(start_time=grid_time(first, rate) + offset, data=data, stations=stations,
                                component_order=comp_order, sampling_rate=rate, grouping="instrument")

    def annotate_batch_pre(self, batch: torch.Tensor, argdict: dict[str, Any]) -> torch.Tensor:
        return batch  # normalisation is part of forward(), shared with the ONNX graph

    def annotate_batch_post(
        self, batch: torch.Tensor, piggyback: Any, argdict: dict[str, Any]
    ) -> torch.Tensor:
        return torch.transpose(batch, -1, -2)

    def classify_aggregate(self, annotations, argdict) -> sbu.ClassifyOutput:
        picks = sbu.PickList()
        for phase in "PS":
            threshold = argdict.get(
                f"{phase}_threshold", self._annotate_args["*_threshold"][1]
            )
            picks += self.picks_from_annotations(
                annotations.select(channel=f"{self.__class__.__name__}_{phase}"),
                threshold,
                phase,
            )
        return sbu.ClassifyOutput(self.name, picks=sbu.PickList(sorted(picks)))

    def get_model_args(self) -> dict[str, Any]:
        model_args = super().get_model_args()
        for key in ("citation", "in_samples", "output_type", "pred_sample", "labels"):
            model_args.pop(key, None)
        model_args.update(
            window_len=self.window_len,
            in_channels=self.in_channels,
            num_phases=self.num_phases,
            base_channels=self.base_channels,
            depth=self.depth,
            stride=self.stride,
            kernel_size=self.kernel_size,
            width_multipliers=list(self.width_multipliers),
            aligned_upsampling=self.aligned_upsampling,
        )
        if self.lookahead_s is not None:  # offline students keep their saved arguments unchanged
            model_args.update(lookahead_s=self.lookahead_s, hop_s=self.hop_s, confirm=self.confirm)
        if self.causal:
            model_args.update(causal=True)
        if self.padded_start:
            model_args.update(padded_start=True)
        return model_args


# size and cost live in xiaonet.models.cost (one counter for every network); importable here too


def set_torch_threads(threads: int) -> None:
    """Threads of every torch model in this process (at least 1): the one place the command
    line's ``--threads`` reaches torch."""
    torch.set_num_threads(max(1, int(threads)))


from xiaonet.models.cost import count_macs, count_parameters  # noqa: E402,F401

__all__ = ["XiaoNet", "normalize_window", "count_parameters", "count_macs", "PHASE_LABELS"]
_ = np  # numpy is part of the public dtype story of annotate(); keep import explicit
