"""Export the PyTorch sample models in models/ (needs torch 2.13.0).

Run from anywhere:  python models/make_torch_models.py [NAME_SUBSTRING ...]

For each model NAME this writes models/NAME.onnx and models/NAME.npz. The npz
holds the model inputs keyed by graph input name and torch's own outputs keyed
by graph output name (float32, np.savez, no pickles). Every model is checked
with onnx.checker (full_check=True) and run on onnxruntime CPU (graph
optimizations disabled); the max abs difference to torch is printed and must be
below 1e-4. The one exception is same_dilated_ts13, which onnxruntime refuses
to run as exported (auto_pad=SAME_UPPER with dilations), by design.

Suffixes: _ts13/_ts11/_ts9 = TorchScript exporter (dynamo=False) at opset
13/11/9; _dyn18 = dynamo exporter at opset 18 (optimizer on); _dyn18noopt =
dynamo exporter at opset 18 with optimize=False.
"""

import logging
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

from _common import HERE, make_all, save

EXPECTED_TORCH = "2.13.0"
logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" noise


# --------------------------------------------------------------------------- helpers


def seeded(seed):
    """Seed torch for one model: weights, BN statistics and inputs."""
    torch.manual_seed(seed)


def randomize_norms(module):
    """Give every BatchNorm / LayerNorm random affine parameters (and BN random running
    statistics), so that folding them is not a no-op and so that the TorchScript
    exporter does not deduplicate equal default ones/zeros tensors (it turns a
    duplicate initializer into an Identity of the other)."""
    with torch.no_grad():
        for norm in module.modules():
            if isinstance(norm, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.5, 0.5)
            if isinstance(norm, (nn.BatchNorm1d, nn.BatchNorm2d)):
                norm.running_mean.uniform_(-0.5, 0.5)
                norm.running_var.uniform_(0.5, 1.5)
    return module


def export(module, args, name, kind, input_names, output_names, dynamic=None):
    """Export `module` with one of the exporter kinds; returns the .onnx path.

    kind: "ts13", "ts11", "ts9" (TorchScript) or "dyn18", "dyn18noopt" (dynamo).
    dynamic: for TorchScript a dynamic_axes dict, for dynamo a dynamic_shapes dict.
    Extra TorchScript options can be passed as kind=("ts13", {...}).
    """
    extra = {}
    if isinstance(kind, tuple):
        kind, extra = kind
    path = os.path.join(HERE, name + ".onnx")
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind.startswith("ts"):
            torch.onnx.export(
                module, args, path, dynamo=False, opset_version=int(kind[2:]),
                input_names=input_names, output_names=output_names,
                dynamic_axes=dynamic, **extra,
            )
        elif kind in ("dyn18", "dyn18noopt"):
            torch.onnx.export(
                module, args, path, dynamo=True, opset_version=18,
                optimize=(kind == "dyn18"), external_data=False,
                input_names=input_names, output_names=output_names,
                dynamic_shapes=dynamic, verbose=False,
            )
        else:
            raise ValueError(kind)
    return path


def run_torch(module, args, output_names):
    with torch.no_grad():
        out = module.eval()(*args)
    if isinstance(out, torch.Tensor):
        out = (out,)
    return {n: o.numpy().astype(np.float32) for n, o in zip(output_names, out)}


def export_all(module, args, name, kinds, input_names=("x",), output_names=("y",), dynamic=None):
    """Export one module with several exporters and save each (same weights, same inputs)."""
    input_names, output_names = list(input_names), list(output_names)
    inputs = {n: a.numpy() for n, a in zip(input_names, args)}
    outputs = run_torch(module, args, output_names)
    for kind in kinds:
        kname = kind[0] if isinstance(kind, tuple) else kind
        dyn = None if dynamic is None else dynamic["dyn" if kname.startswith("dyn") else "ts"]
        full = f"{name}_{kname}"
        save(full, export(module, args, full, kind, input_names, output_names, dyn), inputs, outputs)


# --------------------------------------------------------------------------- modules


class Chomp(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return x[:, :, : -self.p]


class TCNBlock(nn.Module):
    """Conv1d(padding=p, dilation=d) -> chomp -> ReLU, twice; residual add (1x1 downsample
    when the channel count changes), then ReLU."""

    def __init__(self, cin, cout, k, d):
        super().__init__()
        p = (k - 1) * d
        self.conv1 = nn.Conv1d(cin, cout, k, padding=p, dilation=d)
        self.chomp1 = Chomp(p)
        self.conv2 = nn.Conv1d(cout, cout, k, padding=p, dilation=d)
        self.chomp2 = Chomp(p)
        self.downsample = nn.Conv1d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = torch.relu(self.chomp1(self.conv1(x)))
        h = torch.relu(self.chomp2(self.conv2(h)))
        res = x if self.downsample is None else self.downsample(x)
        return torch.relu(h + res)


class TCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = TCNBlock(8, 16, 3, 1)
        self.block2 = TCNBlock(16, 16, 3, 2)

    def forward(self, x):
        return self.block2(self.block1(x))


class CausalFPad(nn.Module):
    """F.pad(x, (p, 0)) without a value, then Conv1d(k3, dilation 2, padding 0)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3, dilation=2)

    def forward(self, x):
        return self.conv(F.pad(x, (4, 0)))


class CausalConstPad(nn.Module):
    """nn.ConstantPad1d((2, 0), 0.0) then Conv1d(k3)."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ConstantPad1d((2, 0), 0.0)
        self.conv = nn.Conv1d(8, 8, 3)

    def forward(self, x):
        return self.conv(self.pad(x))


class WaveNet(nn.Module):
    """4 gated layers, k2, dilations 1,2,4,8, causal F.pad, 1x1 residual and skip convs."""

    def __init__(self, c=8, dilations=(1, 2, 4, 8)):
        super().__init__()
        self.dilations = dilations
        self.gate = nn.ModuleList(nn.Conv1d(c, 2 * c, 2, dilation=d) for d in dilations)
        self.res = nn.ModuleList(nn.Conv1d(c, c, 1) for _ in dilations)
        self.skip = nn.ModuleList(nn.Conv1d(c, c, 1) for _ in dilations)

    def forward(self, x):
        skip = None
        for d, gate, res, skp in zip(self.dilations, self.gate, self.res, self.skip):
            h = gate(F.pad(x, (d, 0)))
            a, b = h.chunk(2, dim=1)
            z = torch.tanh(a) * torch.sigmoid(b)
            x = x + res(z)
            s = skp(z)
            skip = s if skip is None else skip + s
        return skip


class QuartzNetBlock(nn.Module):
    """[depthwise k11 (no bias) -> pointwise -> BN -> ReLU] x2, residual 1x1 conv + BN,
    added before the last ReLU (as in QuartzNet)."""

    def __init__(self, c=8, c2=16, k=11):
        super().__init__()
        self.dw1 = nn.Conv1d(c, c, k, groups=c, padding=k // 2, bias=False)
        self.pw1 = nn.Conv1d(c, c2, 1)
        self.bn1 = nn.BatchNorm1d(c2)
        self.dw2 = nn.Conv1d(c2, c2, k, groups=c2, padding=k // 2, bias=False)
        self.pw2 = nn.Conv1d(c2, c2, 1)
        self.bn2 = nn.BatchNorm1d(c2)
        self.res_conv = nn.Conv1d(c, c2, 1)
        self.res_bn = nn.BatchNorm1d(c2)

    def forward(self, x):
        h = torch.relu(self.bn1(self.pw1(self.dw1(x))))
        h = self.bn2(self.pw2(self.dw2(h)))
        return torch.relu(h + self.res_bn(self.res_conv(x)))


class DwBnPw(nn.Module):
    """Depthwise k3 -> BatchNorm1d -> pointwise (BN between the two convs)."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv1d(8, 8, 3, padding=1, groups=8)
        self.bn = nn.BatchNorm1d(8)
        self.pw = nn.Conv1d(8, 16, 1)

    def forward(self, x):
        return self.pw(self.bn(self.dw(x)))


class WhisperFrontend(nn.Module):
    def __init__(self, n_mels=16, d=32):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)

    def forward(self, x):
        return F.gelu(self.conv2(F.gelu(self.conv1(x))))


class MobileNetV2Block(nn.Module):
    """1x1 expand + BN + ReLU6, depthwise 3x3 + BN + ReLU6, 1x1 project + BN, residual add."""

    def __init__(self, c=8, expand=4):
        super().__init__()
        h = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.project(self.dw(self.expand(x)))


class MobileNetV1Block(nn.Module):
    """Depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU (ReLU between the two convs)."""

    def __init__(self, c=8, c2=16):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.pw = nn.Conv2d(c, c2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)

    def forward(self, x):
        return torch.relu(self.bn2(self.pw(torch.relu(self.bn1(self.dw(x))))))


class HiFiGANUpsampler(nn.Module):
    """LeakyReLU -> ConvTranspose1d(16, 8, 4, s2, p1) -> residual block of dilated k3 convs
    (d = 1, 3, padding = d), each x = x + conv(leaky_relu(x))."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose1d(16, 8, 4, stride=2, padding=1)
        self.convs = nn.ModuleList(nn.Conv1d(8, 8, 3, dilation=d, padding=d) for d in (1, 3))

    def forward(self, x):
        x = self.up(F.leaky_relu(x, 0.1))
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, 0.1))
        return x


class ConvTrCausalTrim(nn.Module):
    """ConvTranspose1d(8, 8, 4, stride 2, no padding), then drop the last k - s outputs."""

    def __init__(self, k=4, s=2):
        super().__init__()
        self.trim = k - s
        self.up = nn.ConvTranspose1d(8, 8, k, stride=s)

    def forward(self, x):
        return self.up(x)[:, :, : -self.trim]


class DynamicConv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(8, 8, 5, padding=2)
        self.conv2 = nn.Conv1d(8, 8, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


class DwSepM2(nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = nn.Conv1d(8, 16, 5, padding=2, groups=8)
        self.pw = nn.Conv1d(16, 12, 1)

    def forward(self, x):
        return self.pw(self.dw(x))


class ConformerConv(nn.Module):
    """Conformer convolution module on [B, T, C]."""

    def __init__(self, c=8, k=7):
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.pw1 = nn.Conv1d(c, 2 * c, 1)
        self.dw = nn.Conv1d(c, c, k, padding=k // 2, groups=c)
        self.bn = nn.BatchNorm1d(c)
        self.pw2 = nn.Conv1d(c, c, 1)

    def forward(self, x):
        h = self.norm(x).transpose(1, 2)
        h = F.glu(self.pw1(h), dim=1)
        h = F.silu(self.bn(self.dw(h)))
        h = self.pw2(h).transpose(1, 2)
        return x + h


class SameDilated(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3, padding="same", dilation=2)

    def forward(self, x):
        return self.conv(x)


class StreamingCache(nn.Module):
    """h = cat([cache, x]); y = conv(h) (k5, no padding); new_cache = h[:, :, -4:]."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 5)

    def forward(self, x, cache):
        h = torch.cat([cache, x], dim=2)
        return self.conv(h), h[:, :, -4:]


class PadConv(nn.Module):
    """F.pad(x, (2, 0), **pad_kwargs) then Conv1d(8, 8, 3)."""

    def __init__(self, **pad_kwargs):
        super().__init__()
        self.pad_kwargs = pad_kwargs
        self.conv = nn.Conv1d(8, 8, 3)

    def forward(self, x):
        return self.conv(F.pad(x, (2, 0), **self.pad_kwargs))


class PadTwoConsumers(nn.Module):
    """The padded tensor feeds the Conv and also a Relu (a second consumer)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3)

    def forward(self, x):
        p = F.pad(x, (2, 0))
        return self.conv(p), torch.relu(p)


class ChompTooLarge(nn.Module):
    """Conv1d(padding=2) then x[:, :, :-5]: the slice drops more than the pad."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 3, padding=2)

    def forward(self, x):
        return self.conv(x)[:, :, :-5]


class Conv1dChain(nn.Module):
    """6 x [Conv1d(16,16,3,p1) -> BN -> ReLU], residual Add every 2 layers,
    MaxPool1d(2) after the 2nd residual pair."""

    def __init__(self, c=16):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv1d(c, c, 3, padding=1), nn.BatchNorm1d(c), nn.ReLU()) for _ in range(6)
        )
        self.pool = nn.MaxPool1d(2)

    def forward(self, x):
        for i in range(0, 6, 2):
            x = x + self.layers[i + 1](self.layers[i](x))
            if i == 2:
                x = self.pool(x)
        return x


# --------------------------------------------------------------------------- models


def tcn_chomp():
    seeded(1)
    m, x = TCN(), torch.randn(1, 8, 64)
    export_all(m, (x,), "tcn_chomp", ["ts13", "dyn18", "ts9"])


def causal_fpad():
    seeded(2)
    m, x = CausalFPad(), torch.randn(1, 8, 64)
    export_all(m, (x,), "causal_fpad", ["ts13", "ts11", "ts9", "dyn18noopt"])


def causal_constpad():
    seeded(3)
    m, x = CausalConstPad(), torch.randn(1, 8, 64)
    export_all(m, (x,), "causal_constpad", ["ts13"])


def wavenet():
    seeded(4)
    m, x = WaveNet(), torch.randn(1, 8, 64)
    export_all(m, (x,), "wavenet", ["ts13", "dyn18"])


def quartznet_block():
    seeded(5)
    m, x = randomize_norms(QuartzNetBlock()), torch.randn(1, 8, 64)
    export_all(m, (x,), "quartznet_block", ["ts13", "dyn18"])


def dwsep_bn_train():
    seeded(6)
    m, x = randomize_norms(DwBnPw()), torch.randn(1, 8, 64)
    keep_bn = {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False}
    export_all(m, (x,), "dwsep_bn_train", [("ts13", keep_bn)])
    ops = [n.op_type for n in onnx.load(os.path.join(HERE, "dwsep_bn_train_ts13.onnx")).graph.node]
    assert "BatchNormalization" in ops, ops


def whisper_frontend():
    seeded(7)
    m, x = WhisperFrontend(), torch.randn(1, 16, 64)
    export_all(m, (x,), "whisper_frontend", ["ts13", "dyn18"])


def mobilenet_block():
    seeded(8)
    m, x = randomize_norms(MobileNetV2Block()), torch.randn(1, 8, 16, 16)
    export_all(m, (x,), "mobilenet_block", ["ts13", "dyn18"])


def mobilenet_v1_block():
    seeded(9)
    m, x = randomize_norms(MobileNetV1Block()), torch.randn(1, 8, 16, 16)
    export_all(m, (x,), "mobilenet_v1_block", ["ts13"])


def hifigan_upsampler():
    seeded(10)
    m, x = HiFiGANUpsampler(), torch.randn(1, 16, 32)
    export_all(m, (x,), "hifigan_upsampler", ["ts13", "dyn18"])


def convtr_causal_trim():
    seeded(11)
    m, x = ConvTrCausalTrim(), torch.randn(1, 8, 32)
    export_all(m, (x,), "convtr_causal_trim", ["ts13"])


def dynamic_conv1d():
    seeded(12)
    m, x = DynamicConv1d(), torch.randn(2, 8, 37)
    dynamic = {
        "ts": {"x": {0: "batch", 2: "length"}, "y": {0: "batch", 2: "out_length"}},
        "dyn": {"x": {0: torch.export.Dim("batch"), 2: torch.export.Dim("length")}},
    }
    export_all(m, (x,), "dynamic_conv1d", ["ts13", "dyn18"], dynamic=dynamic)


def dwsep1d_m2():
    seeded(13)
    m, x = DwSepM2(), torch.randn(1, 8, 64)
    export_all(m, (x,), "dwsep1d_m2", ["ts13"])


def conformer_conv():
    seeded(14)
    m, x = randomize_norms(ConformerConv()), torch.randn(1, 32, 8)
    export_all(m, (x,), "conformer_conv", ["ts13", "dyn18"])


def same_dilated():
    seeded(15)
    m, x = SameDilated(), torch.randn(1, 8, 64)
    export_all(m, (x,), "same_dilated", ["ts13"])


def streaming_cache():
    seeded(16)
    m, x, cache = StreamingCache(), torch.randn(1, 8, 16), torch.randn(1, 8, 4)
    export_all(m, (x, cache), "streaming_cache", ["ts13"],
               input_names=("x", "cache"), output_names=("y", "new_cache"))


def reflect_pad_conv():
    seeded(17)
    m, x = PadConv(mode="reflect"), torch.randn(1, 8, 64)
    export_all(m, (x,), "reflect_pad_conv", ["ts13"])


def pad_value1_conv():
    seeded(18)
    m, x = PadConv(value=1.0), torch.randn(1, 8, 64)
    export_all(m, (x,), "pad_value1_conv", ["ts13"])


def pad_two_consumers():
    seeded(19)
    m, x = PadTwoConsumers(), torch.randn(1, 8, 64)
    export_all(m, (x,), "pad_two_consumers", ["ts13"], output_names=("y", "padded_relu"))


def chomp_too_large():
    seeded(20)
    m, x = ChompTooLarge(), torch.randn(1, 8, 64)
    export_all(m, (x,), "chomp_too_large", ["ts13"])


def conv1d_chain():
    seeded(21)
    m, x = randomize_norms(Conv1dChain()), torch.randn(1, 16, 64)
    export_all(m, (x,), "conv1d_chain", ["ts13"])


MODELS = [
    tcn_chomp, causal_fpad, causal_constpad, wavenet, quartznet_block, dwsep_bn_train,
    whisper_frontend, mobilenet_block, mobilenet_v1_block, hifigan_upsampler,
    convtr_causal_trim, dynamic_conv1d, dwsep1d_m2, conformer_conv, same_dilated,
    streaming_cache, reflect_pad_conv, pad_value1_conv, pad_two_consumers,
    chomp_too_large, conv1d_chain,
]


def main(filters):
    if not torch.__version__.startswith(EXPECTED_TORCH):
        print(f"warning: torch {torch.__version__}, the models were made with {EXPECTED_TORCH}; "
              "exports may differ", file=sys.stderr)
    make_all(MODELS, filters)


if __name__ == "__main__":
    main(sys.argv[1:])
