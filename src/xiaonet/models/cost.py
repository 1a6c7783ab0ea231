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
