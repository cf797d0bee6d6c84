"""Export the causal-fold test models that make_torch_models.py does not make (needs torch 2.13.0).

Run from anywhere:  python models/make_causal_models.py [NAME_SUBSTRING ...]

Same conventions as make_torch_models.py (whose helpers and modules this
reuses): models/NAME.onnx + NAME.npz (inputs and torch's outputs), checked with
onnx.checker (full) and onnxruntime CPU against torch (< 1e-4).

What these add, for `--fold causal`:
* other exporter forms of the TCN chomp (TorchScript opset 11, dynamo with its
  optimizer off: Slice operands as Constant -> Cast -> Reshape chains, and a
  dynamic length, where `ends` stays the constant -p);
* the trimmed causal ConvTranspose1d with a dynamic length: `y[:, :, :-2]`
  keeps the constant end -2 in both exporters; written against a length
  (`y.shape[-1] - 2`, `2 * x.shape[-1]`) the Slice end is computed at run time:
  from the ConvTranspose output in TorchScript (Shape -> Gather -> Sub ->
  Unsqueeze), from the input in dynamo (Shape(start=2, end=3) -> Mul ...);
* `Pad -> Unsqueeze -> Conv` (a 1-D causal conv written as a 2-D one), which
  the dynamo optimizer does not fuse;
* a Mamba-style depthwise conv that pads k-1 on both sides and slices back to
  the input length (`[..., :L]`), static and dynamic;
* a strided causal conv (`F.pad` + Conv1d stride 2);
* WaveNet through the dynamo exporter with its optimizer off;
* the rest of the acceptance matrix (every exporter kind: TorchScript 9, 11,
  13, dynamo 18 with its optimizer on and off) for `F.pad` + Conv1d,
  `nn.ConstantPad1d`, WaveNet, the trimmed ConvTranspose1d and the streaming
  cache, plus the trimmed ConvTranspose1d written against a static input length
  (`ends` the constant 64 = 2 * 32, a length computed from the static shape).
"""

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import make_all
from make_torch_models import (
    TCN, CausalConstPad, CausalFPad, ConvTrCausalTrim, StreamingCache, WaveNet, export_all, seeded,
)


class PadUnsqueezeConv2d(nn.Module):
    """Causal 1-D conv written as 2-D by hand: F.pad -> unsqueeze(2) -> conv2d(kernel (1, 3), dilation (1, 2))."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 8, 3) * 0.2)
        self.bias = nn.Parameter(torch.randn(8) * 0.1)

    def forward(self, x):
        h = F.pad(x, (4, 0)).unsqueeze(2)
        return F.conv2d(h, self.weight.unsqueeze(2), self.bias, dilation=(1, 2)).squeeze(2)


class MambaConv(nn.Module):
    """Mamba's short conv: depthwise Conv1d(padding=k-1), then keep the first L outputs."""

    def __init__(self, c=8, k=4):
        super().__init__()
        self.conv = nn.Conv1d(c, c, k, groups=c, padding=k - 1)

    def forward(self, x):
        length = x.shape[-1]
        return self.conv(x)[..., :length]


class ConvTrTrimFromOutput(ConvTrCausalTrim):
    """Trim written against the output length: y[:, :, : y.shape[-1] - (k - s)]."""

    def forward(self, x):
        y = self.up(x)
        return y[:, :, : y.shape[-1] - self.trim]


class ConvTrTrimToInput(ConvTrCausalTrim):
    """Trim written against the input length: y[:, :, : 2 * x.shape[-1]] (stride 2)."""

    def forward(self, x):
        return self.up(x)[:, :, : 2 * x.shape[-1]]


class StridedCausal(nn.Module):
    """F.pad(x, (4, 0)) -> Conv1d(k5, stride 2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 5, stride=2)

    def forward(self, x):
        return self.conv(F.pad(x, (4, 0)))


def length_axes(output_length="out_length"):
    """dynamic_axes / dynamic_shapes for a [1, C, length] input."""
    return {
        "ts": {"x": {2: "length"}, "y": {2: output_length}},
        "dyn": {"x": {2: torch.export.Dim("length", min=4, max=4096)}},
    }


def tcn_chomp_more():
    seeded(1)  # the same weights as tcn_chomp_*
    m, x = TCN(), torch.randn(1, 8, 64)
    export_all(m, (x,), "tcn_chomp", ["ts11", "dyn18noopt"])


def tcn_chomp_dynlen():
    seeded(1)
    m, x = TCN(), torch.randn(1, 8, 64)
    export_all(m, (x,), "tcn_chomp_dynlen", ["ts13", "dyn18"], dynamic=length_axes())


def convtr_causal_trim_dynlen():
    seeded(11)  # the same weights as convtr_causal_trim_ts13
    m, x = ConvTrCausalTrim(), torch.randn(1, 8, 32)
    export_all(m, (x,), "convtr_causal_trim_dynlen", ["ts13", "dyn18"], dynamic=length_axes())


def convtr_trim_computed_end():
    seeded(11)
    m, x = ConvTrTrimFromOutput(), torch.randn(1, 8, 32)
    export_all(m, (x,), "convtr_trim_from_output_dynlen", ["ts13", "dyn18"], dynamic=length_axes())
    seeded(11)
    m, x = ConvTrTrimToInput(), torch.randn(1, 8, 32)
    export_all(m, (x,), "convtr_trim_to_input_dynlen", ["ts13", "dyn18"], dynamic=length_axes())


def convtr_causal_trim_dyn18():
    seeded(11)
    m, x = ConvTrCausalTrim(), torch.randn(1, 8, 32)
    export_all(m, (x,), "convtr_causal_trim", ["dyn18"])


def causal_unsq_conv2d():
    seeded(30)
    m, x = PadUnsqueezeConv2d(), torch.randn(1, 8, 64)
    export_all(m, (x,), "causal_unsq_conv2d", ["ts13", "ts11", "dyn18"])


def mamba_conv():
    seeded(31)
    m, x = MambaConv(), torch.randn(1, 8, 64)
    export_all(m, (x,), "mamba_conv", ["ts13", "dyn18"])
    export_all(m, (x,), "mamba_conv_dynlen", ["ts13", "dyn18"], dynamic=length_axes("length"))


def strided_causal():
    seeded(32)
    m, x = StridedCausal(), torch.randn(1, 8, 64)
    export_all(m, (x,), "strided_causal", ["ts13", "dyn18noopt"])


def wavenet_noopt():
    seeded(4)  # the same weights as wavenet_*
    m, x = WaveNet(), torch.randn(1, 8, 64)
    export_all(m, (x,), "wavenet", ["dyn18noopt", "ts11"])


def acceptance_matrix():
    """The exporter kinds make_torch_models.py leaves out (same seeds, so the same weights and inputs)."""
    seeded(2)
    m, x = CausalFPad(), torch.randn(1, 8, 64)
    export_all(m, (x,), "causal_fpad", ["dyn18"])  # the optimizer fuses the Pad: already canonical
    seeded(3)
    m, x = CausalConstPad(), torch.randn(1, 8, 64)
    export_all(m, (x,), "causal_constpad", ["ts11", "ts9", "dyn18", "dyn18noopt"])
    seeded(4)
    m, x = WaveNet(), torch.randn(1, 8, 64)
    export_all(m, (x,), "wavenet", ["ts9"])
    seeded(11)
    m, x = ConvTrCausalTrim(), torch.randn(1, 8, 32)
    export_all(m, (x,), "convtr_causal_trim", ["ts11", "ts9", "dyn18noopt"])
    seeded(11)
    m, x = ConvTrTrimToInput(), torch.randn(1, 8, 32)
    export_all(m, (x,), "convtr_trim_to_input", ["ts13"])  # static: ends is the constant 64
    seeded(16)
    m, x, cache = StreamingCache(), torch.randn(1, 8, 16), torch.randn(1, 8, 4)
    export_all(m, (x, cache), "streaming_cache", ["ts11", "ts9", "dyn18", "dyn18noopt"],
               input_names=("x", "cache"), output_names=("y", "new_cache"))


MODELS = [
    tcn_chomp_more, tcn_chomp_dynlen, convtr_causal_trim_dynlen, convtr_trim_computed_end, convtr_causal_trim_dyn18,
    causal_unsq_conv2d, mamba_conv, strided_causal, wavenet_noopt, acceptance_matrix,
]


def main(filters):
    make_all(MODELS, filters)


if __name__ == "__main__":
    main(sys.argv[1:])
