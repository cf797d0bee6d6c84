"""Build the 1D models `benchmarks/bench_layout.py` times (issue 17: choosing a layout).

Run from anywhere:  python models/make_layout_models.py
(needs torch 2.13.0 for the export, onnxruntime for the quantization).

* `layout_float_ts13`: a PyTorch 1D conv stack, x [1, 16, "L"] (dynamic length):
  Conv1d(16, 64, 5, pad 2) -> ReLU -> Conv1d(64, 64, 5, pad 4, dilation 2) -> ReLU
  -> Conv1d(64, 64, 3, pad 1) -> ReLU -> Conv1d(64, 16, 1). TorchScript exporter, opset 13.
* `layout_int8_dyn`: the same export through onnxruntime's
  `quantization.quantize_dynamic` (int8 weights, uint8 activations): every Conv becomes
  `DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul (-> Add bias)`, the form of the
  published int8 TTS model that ran 1.96x slower after `--to-2d --layout w`. Its .npz
  outputs are onnxruntime's own (torch has no ConvInteger); the script prints their
  distance to the float model's.

Deterministic: two runs write the same weights and inputs.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, RESULTS, op_sequence, print_table, run_ort, save  # noqa: E402
from make_torch_models import export, run_torch, seeded  # noqa: E402

LENGTH = 64  # the length stored in the .npz; the benchmark times longer inputs


class Stack1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(16, 64, 5, padding=2), nn.ReLU(),
            nn.Conv1d(64, 64, 5, padding=4, dilation=2), nn.ReLU(),
            nn.Conv1d(64, 64, 3, padding=1), nn.ReLU(),
            nn.Conv1d(64, 16, 1),
        )

    def forward(self, x):
        return self.body(x)


def make_float_and_int8() -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    seeded(17)
    module = Stack1d()
    x = torch.randn(1, 16, LENGTH)
    inputs = {"x": x.numpy()}
    outputs = run_torch(module, (x,), ["y"])
    name = "layout_float_ts13"
    save(name, export(module, (x,), name, "ts13", ["x"], ["y"], {"x": {2: "L"}, "y": {2: "L"}}), inputs, outputs)

    int8 = "layout_int8_dyn"
    path = os.path.join(HERE, int8 + ".onnx")
    with tempfile.TemporaryDirectory() as tmp:
        quantize_dynamic(os.path.join(HERE, name + ".onnx"), os.path.join(tmp, "q.onnx"), weight_type=QuantType.QInt8)
        model = onnx.load(os.path.join(tmp, "q.onnx"))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    got = run_ort(path, inputs)
    np.savez(os.path.join(HERE, int8 + ".npz"), x=inputs["x"], y=got["y"])
    diff = float(np.max(np.abs(got["y"] - outputs["y"])))
    RESULTS.append((int8, op_sequence(model), f"x {list(x.shape)}", f"{diff:.1e} vs float torch (npz: ort's own)"))
    print(f"{int8:28s} max abs diff to the float model {diff:.2e} | {op_sequence(model)}")


if __name__ == "__main__":
    make_float_and_int8()
    print_table()
