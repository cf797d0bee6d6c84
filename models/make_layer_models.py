"""Export one small PyTorch Conv1d network twice, for `check --layers` name matching (needs torch 2.13.0).

Run from anywhere:  python models/make_layer_models.py

layers_twin_ts13 and layers_twin_ts17 are the same network with the same
weights, exported by the TorchScript exporter at opset 13 and at opset 17:
two files no rewrite relates, whose intermediate tensors share names and
shapes (tests/checker/test_layers.py matches them by name, as Polygraphy does).
Writes models/NAME.onnx and models/NAME.npz (inputs and torch's outputs).
"""

import os
import sys

import onnx
import torch
import torch.nn as nn

from _common import HERE, save


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3, padding=1)
        self.c2 = nn.Conv1d(8, 8, 3, padding=2, dilation=2)
        self.c3 = nn.Conv1d(8, 4, 1)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = torch.tanh(self.c2(h)) + h
        return self.c3(h)


def main():
    torch.manual_seed(18)
    net = Net().eval()
    x = torch.randn(1, 4, 32)
    with torch.no_grad():
        y = net(x).numpy()
    for opset in (13, 17):
        name = f"layers_twin_ts{opset}"
        path = os.path.join(HERE, name + ".onnx")
        torch.onnx.export(net, (x,), path, dynamo=False, opset_version=opset, input_names=["x"], output_names=["y"])
        model = onnx.load(path)
        if model.ir_version > 13:
            model.ir_version = 13
            onnx.save(model, path)
        save(name, path, {"x": x.numpy()}, {"y": y})


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
