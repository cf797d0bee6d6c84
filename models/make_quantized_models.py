"""Dynamically quantized 1D convs (issue 16): a float torch export put through onnxruntime's quantize_dynamic.

torch.ao.quantization.quantize_dynamic does not quantize convs, so the
float model is exported with the TorchScript exporter and
onnxruntime.quantization.quantize_dynamic turns each Conv into
DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul (the form of published
int8 TTS models). The middle conv is dilated (dilation 2) for the dilated
fold. Run with an environment that has torch and onnxruntime:
    /work/torchenv/bin/python models/make_quantized_models.py
"""

import os
import tempfile

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnxruntime.quantization import QuantType, quantize_dynamic

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


def main():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(1, 4, 32)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = os.path.join(tmp, "float.onnx")
        torch.onnx.export(net, (x,), float_path, input_names=["x"], output_names=["y"], opset_version=13,
                          dynamo=False, dynamic_axes={"x": {2: "L"}, "y": {2: "L"}})
        out = os.path.join(HERE, f"{NAME}.onnx")
        quantize_dynamic(float_path, out, weight_type=QuantType.QUInt8)
    model = onnx.load(out)
    assert model.ir_version <= 10
    onnx.checker.check_model(model, full_check=True)
    got = run_ort(out, {"x": x.numpy()})["y"]
    with torch.no_grad():
        want = net(x).numpy()
    print(f"{NAME}: {' '.join(n.op_type for n in model.graph.node)}; max diff vs float torch "
          f"{float(np.abs(got - want).max()):.3g} (quantization error)")


if __name__ == "__main__":
    main()
