"""Size and cost of any picker network: parameters and multiply-accumulates per window (the
one MAC counter of the project, for the students and the teachers alike)."""

from __future__ import annotations


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model, n_samples: int, in_channels: int = 3) -> int:
    """Multiply-accumulates of one window of ``n_samples``: Conv1d / ConvTranspose1d, Linear,
    LSTM and EQTransformer's additive attention (every layer with weights in the students and
    the teachers).

    Element-wise operations, normalisation and activations are not counted.
    """
    import torch
    import torch.nn as nn

    macs = 0

    def hook(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.ConvTranspose1d):
            macs += module.in_channels * module.out_channels // module.groups * module.kernel_size[0] * inputs[0].shape[-1]
        elif isinstance(module, nn.Conv1d):
            macs += module.in_channels * module.out_channels // module.groups * module.kernel_size[0] * output.shape[-1]
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features * (output.numel() // module.out_features)
        elif isinstance(module, nn.LSTM):
            steps = inputs[0].shape[1 if module.batch_first else 0]
            batch = inputs[0].shape[0 if module.batch_first else 1] if inputs[0].dim() == 3 else 1
            directions = 2 if module.bidirectional else 1
            h = module.hidden_size
            for layer in range(module.num_layers):
                size_in = module.input_size if layer == 0 else h * directions
                macs += directions * steps * batch * 4 * h * (size_in + h)
        elif type(module).__name__ == "SeqSelfAttention":
            x = inputs[0]  # (batch, channels, time)
            channels, steps = x.shape[1], x.shape[2]
            units = module.Wx.shape[1]
            macs += x.shape[0] * (2 * steps * channels * units + steps * steps * units + steps * steps * channels)

    counted = (nn.Conv1d, nn.ConvTranspose1d, nn.Linear, nn.LSTM)
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, counted) or type(m).__name__ == "SeqSelfAttention"]
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, n_samples))
    finally:
        for handle in handles:
            handle.remove()
    return int(macs)


def student_cost(model_args: dict, n_samples: int = 3001) -> tuple[int, int]:
    """``(parameters, multiply-accumulates per window)`` of an offline student from its
    constructor arguments (a preset, or the ``model_args`` of a weights ``.json``), by hand
    and without torch: what :func:`count_parameters` and :func:`count_macs` measure on the
    built network (a test holds them equal), so ``xiaonet models`` imports nothing heavy."""
    depth, stride = int(model_args.get("depth", 3)), int(model_args.get("stride", 4))
    k, channels = int(model_args.get("kernel_size", 5)), int(model_args.get("in_channels", 3))
    multipliers = model_args.get("width_multipliers") or [1, 2, 3, 4, 5, 6][: depth + 1]
    widths = [int(model_args.get("base_channels", 4)) * int(m) for m in multipliers]
    up_kernel = 2 * stride - 1 if model_args.get("aligned_upsampling") else stride
    n = n_samples + (-n_samples) % stride ** (depth + 1)
    lengths = [(n + 2 * (stride // 2) - 2 * stride) // stride + 1]  # after the strided stem
    parameters = channels * widths[0] * 2 * stride + widths[0]
    macs = channels * widths[0] * 2 * stride * lengths[0]
    for level in range(1, depth + 1):
        a, b = widths[level - 1], widths[level]
        lengths.append((lengths[-1] + 2 * (k // 2) - k) // stride + 1)
        parameters += a * b * k + b + b * b * k + b  # strided convolution, refinement
        macs += (a * b * k + b * b * k) * lengths[-1]
        parameters += b * a * up_kernel + a + 2 * a * a * 3 + a  # upsampling, merge
        macs += b * a * up_kernel * lengths[level] + 2 * a * a * 3 * lengths[level - 1]
    parameters += widths[0] * 3 * stride + 3  # the head
    macs += widths[0] * 3 * stride * lengths[0]
    return parameters, macs
