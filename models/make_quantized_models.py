"""Dynamically quantized 1D convs (issue 16): a float torch export put through onnxruntime's quantize_dynamic.

torch.ao.quantization.quantize_dynamic does not quantize convs, so the
float model is exported with the TorchScript exporter and
onnxruntime.quantization.quantize_dynamic turns each Conv into
DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul (the form of published
int8 TTS models). The middle conv is dilated (dilation 2) for the dilated
fold. Run with an environment that has torch and onnxruntime:
    /work/torchenv/bin/python models/make_quantized_models.py [name substring]

quant_dynamic_tcn_ts13 is a TCN-ish net whose folds apply without
--expand-dilations: a causal left `F.pad` (Pad -> DynamicQuantizeLinear ->
ConvInteger), a chomp (`[:, :, :-2]` after ConvInteger -> Cast -> Mul -> Add),
and a kernel stored with zeros between its taps (a dilation-2 conv written as
k=5, quantized so that the zero taps hold the weight zero point) chomped too.
quant_static_qdq_tcn_ts13 is the same net through quantize_static in the QDQ
format (QuantizeLinear -> DequantizeLinear around activations, int8 weights per
output channel behind DequantizeLinear).
"""

import os
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

from _common import HERE, run_ort

NAME = "quant_dynamic_conv1d_dyn"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(4, 8, 3, padding=1)
        self.b = nn.Conv1d(8, 8, 3, padding=2, dilation=2)
        self.c = nn.Conv1d(8, 4, 1)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


class Tcn(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(4, 8, 3, dilation=2)  # causal: left-padded by 4 outside the conv
        self.b = nn.Conv1d(8, 8, 3, padding=2)  # chomped: the last 2 outputs dropped
        self.c = nn.Conv1d(8, 4, 5, padding=4)  # zero-inserted kernel (taps 0, 2, 4), chomped by 4
        with torch.no_grad():
            self.c.weight[:, :, 1::2] = 0.0

    def forward(self, x):
        h = torch.relu(self.a(F.pad(x, (4, 0))))
        h = torch.relu(self.b(h)[:, :, :-2])
        return self.c(h)[:, :, :-4]


MODELS = {NAME: (Net, {"opset_version": 13}), "quant_dynamic_tcn_ts13": (Tcn, {"opset_version": 13}),
          "quant_static_qdq_tcn_ts13": (Tcn, {"opset_version": 13})}


class _Calibration:
    """quantize_static's calibration reader: a few seeded random inputs."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.feeds = iter([{"x": rng.standard_normal((1, 4, 32)).astype(np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self.feeds, None)


def build(name, cls, export_args):
    torch.manual_seed(0)
    net = cls().eval()
    x = torch.randn(1, 4, 32)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = os.path.join(tmp, "float.onnx")
        torch.onnx.export(net, (x,), float_path, input_names=["x"], output_names=["y"], dynamo=False,
                          dynamic_axes={"x": {2: "L"}, "y": {2: "L"}}, **export_args)
        out = os.path.join(HERE, f"{name}.onnx")
        if "static" in name:  # QDQ format: Q -> DQ around activations, DequantizeLinear(int8 weight), per channel
            quantize_static(float_path, out, _Calibration(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        else:
            quantize_dynamic(float_path, out, weight_type=QuantType.QUInt8)
    model = onnx.load(out)
    assert model.ir_version <= 10
    onnx.checker.check_model(model, full_check=True)
    got = run_ort(out, {"x": x.numpy()})["y"]
    with torch.no_grad():
        want = net(x).numpy()
    print(f"{name}: {' '.join(n.op_type for n in model.graph.node)}; max diff vs float torch "
          f"{float(np.abs(got - want).max()):.3g} (quantization error)")


def main():
    wanted = sys.argv[1:]
    for name, (cls, export_args) in MODELS.items():
        if not wanted or any(w in name for w in wanted):
            build(name, cls, export_args)


if __name__ == "__main__":
    main()
