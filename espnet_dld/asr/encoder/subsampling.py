"""Input layers (subsampling front ends) that ESPnet's encoders lack.

``input_layer: conv1d4x`` is the front end of the DLD authors' own
layer-dropping conformer: two ``Conv1d`` (kernel 3, stride 2, no padding, no
activation) from the feature channels straight to ``d_model``, then
ESPnet's positional encoding.  It subsamples time 4x like ESPnet's ``conv2d``
(same output lengths, same 7-frame minimum) for about 1/40 of its
multiply-adds (docs/frontend.md): the part of an encoder paid at every depth
shrinks, so time at depth k approaches k/N of full depth.

The name says "conv1d, 4x" and cannot clash with ESPnet's own names, where a
digit after the layer type is the factor (``conv1d2`` is ESPnet's 2x Conv1d
with ReLUs and a projection, ``conv2d`` its 4x Conv2d).

Encoders get the new values by mixing in :class:`ExtraInputLayers` before the
ESPnet class; everything else (options, blocks, forward) stays ESPnet's.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from espnet_dld.compat import Conv2dSubsampling

CONV1D_4X = "conv1d4x"
#: the input_layer values this module adds
EXTRA_INPUT_LAYERS = (CONV1D_4X,)


def conv_output_lengths(lengths: torch.Tensor, convs: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Frames left after unpadded convolutions of ``(kernel, stride)`` along time, clipped at 0."""
    for kernel, stride in convs:
        lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
    return lengths.clamp(min=0)


class Conv1dSubsampling4(Conv2dSubsampling):
    """4x time subsampling by two Conv1d over the feature channels.

    Subclasses ESPnet's ``Conv2dSubsampling`` for its interface only (none of
    its layers are built): ESPnet's encoders then pass the mask through it and
    raise their ``TooShortUttError`` below 7 frames, which is also this
    layer's minimum.  The output mask is computed from each utterance's own
    length, so no kept frame has seen padding and an utterance gets the same
    frames in any batch.
    """

    #: (kernel, stride) of each convolution along time
    TIME_CONVS = ((3, 2), (3, 2))

    def __init__(self, idim: int, odim: int, pos_enc: torch.nn.Module):
        torch.nn.Module.__init__(self)  # deliberately not Conv2dSubsampling's layers
        self.conv = torch.nn.Sequential(
            torch.nn.Conv1d(idim, odim, kernel_size=3, stride=2),
            torch.nn.Conv1d(odim, odim, kernel_size=3, stride=2),
        )
        self.pos_enc = pos_enc

    def forward(
        self, x: torch.Tensor, x_mask: Optional[torch.Tensor]
    ) -> Tuple[Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]], Optional[torch.Tensor]]:
        """(batch, time, idim) and mask (batch, 1, time) -> (batch, time', odim)
        (with relative positional encoding: (x, pos_emb)) and mask (batch, 1, time')."""
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        frames = x.size(1)
        x = self.pos_enc(x)
        if x_mask is None:
            return x, None
        lengths = conv_output_lengths(x_mask.sum(dim=-1), self.TIME_CONVS)  # (batch, 1)
        return x, torch.arange(frames, device=lengths.device)[None, None, :] < lengths[:, :, None]

    def __getitem__(self, key: int) -> torch.nn.Module:
        """``embed[-1]`` is the positional encoding, as in ESPnet's subsampling layers."""
        if key != -1:
            raise NotImplementedError("only embed[-1] (the positional encoding) is supported")
        return self.pos_enc


class ExtraInputLayers:
    """Mix in before an ESPnet encoder class (``ConformerEncoder``,
    ``TransformerEncoder``) to accept the values of :data:`EXTRA_INPUT_LAYERS`.

    The encoder is built by ESPnet with ``input_layer: linear``, whose last
    module is the positional encoding ESPnet chooses for the encoder's
    options (``pos_enc_layer_type``, ``rel_pos_type``,
    ``positional_dropout_rate``); the linear layer is replaced by our front
    end, which takes that positional encoding over.
    """

    def __init__(self, input_size: int, *args, input_layer: Optional[str] = "conv2d", **kwargs):
        if input_layer not in EXTRA_INPUT_LAYERS:
            super().__init__(input_size, *args, input_layer=input_layer, **kwargs)
            return
        super().__init__(input_size, *args, input_layer="linear", **kwargs)
        pos_enc = self.embed[-1]
        self.embed = Conv1dSubsampling4(input_size, self.output_size(), pos_enc)
