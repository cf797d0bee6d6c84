"""Build the models the checker (`convrewrite check`) must find runnable inputs for (issue 13).

Run from anywhere:  python models/make_check_models.py [NAME_SUBSTRING ...]
(needs torch 2.13.0 + onnxscript for the exports; the onnx.helper ones need only onnx, numpy,
onnxruntime and torch as the reference).

Each model has dynamic dims on which the old input draw (every dynamic dim 16, the first 1)
cannot run the original, or dims written the way some exporters write them:

* `stft_reflect_dyn_ts13` / `_dyn18`: an STFT-like front end, x [batch, time] both dynamic:
  `F.pad(x.unsqueeze(1), (256, 256), mode='reflect')` -> Conv1d(1, 64, 512, stride 128) ->
  abs -> log1p -> Conv1d(64, 32, 3, padding 1). A reflect Pad of 256 needs time > 256.
* `paddle_minus1_dims`: a small OCR-like conv net (Conv2d stack, a Conv2d over the whole
  height, squeeze, ReLU, a Conv1d CTC head), exported by torch and then edited the way Paddle writes
  dynamic dims: every dynamic dim is `dim_value: -1` (no dim_param), intermediate value_info
  cleared. Input [-1, 3, 48, -1].
* `resize_dyn_ts13`: x [N, 8, H, W] dynamic -> Conv2d -> `F.interpolate(scale_factor=2)`
  (Resize) -> Add of a learned [1, 8, 40, 40] parameter -> Conv2d 1x1. The only hint to the
  valid size (H = W = 20) is the parameter's shape.
* `broadcast_init_dyn` (onnx.helper): x [1, 8, "L"] -> Conv(k3, pads 1,1) -> Add of an
  initializer [1, 8, 100]. Runs only with L = 100.
* `sym_fixed_elsewhere` (onnx.helper): a [1, 4, "T"] + b [1, 4, 37] -> Conv(k3, pads 1,1).
  The symbol T is fixed to 37 by the other input.

Every model is checked (onnx.checker full_check, onnxruntime CPU run against the framework
or reference outputs, < 1e-4) by `_common.save`; then this script runs each model with
every dynamic dim 16 (and again with the first dim 1, the old default) and prints whether
onnxruntime accepts it. Models listed in FAILS_AT_16 must fail there; the script asserts it.
Deterministic: two runs write byte-identical files.
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import HERE, MAX_ORT_IR, make_all, run_ort, save  # noqa: E402
from make_torch_models import export, run_torch, seeded  # noqa: E402

# name -> why onnxruntime cannot run it when every dynamic dim is 16
FAILS_AT_16 = {
    "stft_reflect_dyn_ts13": "reflect Pad of 256 on 16 samples",
    "stft_reflect_dyn_dyn18": "reflect Pad of 256 on 16 samples",
    "resize_dyn_ts13": "Resize gives 32x32, the Add's parameter is 40x40",
    "broadcast_init_dyn": "Conv output [1, 8, 16] + initializer [1, 8, 100]",
    "sym_fixed_elsewhere": "a [1, 4, 16] + b [1, 4, 37]",
}
AT_16 = []  # rows (name, result with every dynamic dim 16, result with the first 1 and the rest 16)


# --------------------------------------------------------------------------- checks


def dims_of(value_info):
    """A graph input's dims: int for a fixed positive dim, None for a dynamic one (symbolic,
    missing, or a non-positive dim_value as Paddle writes)."""
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
    return out


def try_run(path, first):
    """Run the model with every dynamic dim 16 (dim 0 of each input `first` when dynamic).
    Returns "runs" or "fails: <node: onnxruntime's message, source location dropped>"."""
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d if d is not None else (first if i == 0 else 16) for i, d in enumerate(dims_of(vi))]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    try:
        run_ort(path, feeds, quiet=True)
    except Exception as e:  # onnxruntime's own error: the point of the check
        text = " ".join(str(e).split())
        node = re.search(r"running (\w+) node\. Name:'([^']*)'", text)
        msg = text.split("Status Message: ")[-1]
        msg = re.sub(r"^/\S+:\d+ .*? was false\. ", "", msg)  # drop the source location and the assertion
        return "fails: " + (f"{node.group(1)} {node.group(2)!r}: " if node else "") + msg
    return "runs"


def check_at_16(name):
    """Record and print whether onnxruntime runs NAME at the old default sizes; assert the
    models in FAILS_AT_16 do not."""
    path = os.path.join(HERE, name + ".onnx")
    all16, first1 = try_run(path, 16), try_run(path, 1)
    AT_16.append((name, all16, first1))
    print(f"{name:28s} every dynamic dim 16: {all16}")
    print(f"{'':28s} first dim 1, others 16: {first1}")
    if name in FAILS_AT_16:
        assert all16.startswith("fails") and first1.startswith("fails"), (name, all16, first1)


def save_checked(name, path_or_model, inputs, outputs):
    save(name, path_or_model, inputs, outputs)
    check_at_16(name)


# --------------------------------------------------------------------------- torch modules


class StftReflect(nn.Module):
    """Learned STFT: reflect-pad by half a window, strided Conv1d, log magnitude, a 3-tap Conv1d."""

    def __init__(self, win=512, hop=128, bins=64, out=32):
        super().__init__()
        self.half = win // 2
        self.stft = nn.Conv1d(1, bins, win, stride=hop, bias=False)
        self.post = nn.Conv1d(bins, out, 3, padding=1)

    def forward(self, x):
        h = F.pad(x.unsqueeze(1), (self.half, self.half), mode="reflect")
        return self.post(torch.log1p(torch.abs(self.stft(h))))


class OcrLike(nn.Module):
    """CRNN-like without the RNN: [N, 3, 48, W] -> Conv2d stack (H 48 -> 12 by stride (2, 1), as
    CRNN / PP-OCR recognizers keep the width) -> Conv2d over the whole height -> squeeze -> ReLU
    -> Conv1d CTC head [N, 40, W]. Keeping the width matters: onnx shape inference carries the -1
    width through stride-1 convs unchanged, so the -1 output dims agree with it (a stride-2 conv
    on the width would infer 0 and full_check would refuse the -1 output dim). ReLU after the
    squeeze: with it before, to-2d then to-1d gives back Squeeze -> Relu, not the original order,
    and tests/passes/rank/test_rank_models.py's round trip compares op order."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=(2, 1), padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=(2, 1), padding=1), nn.ReLU(),
        )
        self.collapse = nn.Conv2d(16, 32, (12, 1))
        self.head = nn.Conv1d(32, 40, 3, padding=1)

    def forward(self, x):
        h = torch.relu(self.collapse(self.body(x)).squeeze(2))
        return self.head(h)


class ResizeAdd(nn.Module):
    """Conv2d -> nearest Resize x2 -> + learned [1, 8, 40, 40] -> Conv2d 1x1."""

    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(8, 8, 3, padding=1)
        self.pos = nn.Parameter(torch.randn(1, 8, 40, 40) * 0.1)
        self.post = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = F.interpolate(self.pre(x), scale_factor=2.0, mode="nearest")
        return self.post(h + self.pos)


# --------------------------------------------------------------------------- makers


def stft_reflect():
    seeded(40)
    m, x = StftReflect(), torch.randn(2, 1024)
    inputs, outputs = {"x": x.numpy()}, run_torch(m, (x,), ["y"])
    ts = {"x": {0: "batch", 1: "time"}, "y": {0: "batch", 2: "frames"}}
    save_checked("stft_reflect_dyn_ts13", export(m, (x,), "stft_reflect_dyn_ts13", "ts13", ["x"], ["y"], ts),
                 inputs, outputs)
    dyn = {"x": {0: torch.export.Dim("batch", min=1, max=64), 1: torch.export.Dim("time", min=257, max=1 << 20)}}
    save_checked("stft_reflect_dyn_dyn18", export(m, (x,), "stft_reflect_dyn_dyn18", "dyn18", ["x"], ["y"], dyn),
                 inputs, outputs)


def paddle_minus1_dims():
    """Torch export, then every dynamic dim of the graph inputs and outputs rewritten as
    dim_value -1 (dim_param dropped) and value_info cleared, as paddle2onnx writes them."""
    seeded(41)
    m, x = OcrLike(), torch.randn(1, 3, 48, 192)
    name = "paddle_minus1_dims"
    path = export(m, (x,), name, "ts13", ["x"], ["y"],
                  {"x": {0: "batch", 3: "width"}, "y": {0: "batch", 2: "steps"}})
    model = onnx.load(path)
    for vi in list(model.graph.input) + list(model.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = -1
    del model.graph.value_info[:]
    model.producer_name, model.producer_version = "PaddlePaddle", ""  # the edit, not the export
    assert [dims_of(v) for v in model.graph.input] == [[None, 3, 48, None]]
    assert [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.output] == [[-1, 40, -1]]
    save_checked(name, model, {"x": x.numpy()}, run_torch(m, (x,), ["y"]))


def resize_dyn():
    seeded(42)
    m, x = ResizeAdd(), torch.randn(1, 8, 20, 20)
    name = "resize_dyn_ts13"
    ts = {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "out_h", 3: "out_w"}}
    save_checked(name, export(m, (x,), name, "ts13", ["x"], ["y"], ts), {"x": x.numpy()}, run_torch(m, (x,), ["y"]))


F32 = TensorProto.FLOAT


def helper_model(nodes, inputs, outputs, inits, graph_name):
    graph = helper.make_graph(nodes, graph_name, inputs, outputs,
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8,
                              producer_name="convrewrite make_check_models.py")
    assert model.ir_version <= MAX_ORT_IR
    onnx.checker.check_model(model, full_check=True)
    return model


def conv1d_ref(x, w, b):
    """Reference Conv1d(k3, pads 1,1) in float64 (torch.nn.functional)."""
    t = F.conv1d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                 torch.from_numpy(b.astype(np.float64)), padding=1)
    return t.numpy()


def broadcast_init_dyn():
    rng = np.random.default_rng(43)
    w = (rng.standard_normal((8, 8, 3)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(8) * 0.1).astype(np.float32)
    bias = (rng.standard_normal((1, 8, 100)) * 0.5).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["h"], name="conv", kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Add", ["h", "pos"], ["y"], name="add_pos"),
    ]
    model = helper_model(nodes, [helper.make_tensor_value_info("x", F32, [1, 8, "L"])],
                         [helper.make_tensor_value_info("y", F32, [1, 8, "L"])],
                         {"w": w, "b": b, "pos": bias}, "broadcast_init_dyn")
    x = rng.standard_normal((1, 8, 100)).astype(np.float32)
    y = (conv1d_ref(x, w, b) + bias).astype(np.float32)
    save_checked("broadcast_init_dyn", model, {"x": x}, {"y": y})


def sym_fixed_elsewhere():
    rng = np.random.default_rng(44)
    w = (rng.standard_normal((4, 4, 3)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(4) * 0.1).astype(np.float32)
    nodes = [
        helper.make_node("Add", ["a", "b_in"], ["s"], name="add"),
        helper.make_node("Conv", ["s", "w", "b"], ["y"], name="conv", kernel_shape=[3], pads=[1, 1]),
    ]
    model = helper_model(nodes, [helper.make_tensor_value_info("a", F32, [1, 4, "T"]),
                                 helper.make_tensor_value_info("b_in", F32, [1, 4, 37])],
                         [helper.make_tensor_value_info("y", F32, [1, 4, "T"])],
                         {"w": w, "b": b}, "sym_fixed_elsewhere")
    a = rng.standard_normal((1, 4, 37)).astype(np.float32)
    b_in = rng.standard_normal((1, 4, 37)).astype(np.float32)
    y = conv1d_ref(a.astype(np.float64) + b_in, w, b).astype(np.float32)
    save_checked("sym_fixed_elsewhere", model, {"a": a, "b_in": b_in}, {"y": y})


MODELS = [stft_reflect, paddle_minus1_dims, resize_dyn, broadcast_init_dyn, sym_fixed_elsewhere]


def main(filters):
    make_all(MODELS, filters)
    print("\n| file | every dynamic dim 16 | first dim 1, others 16 |")
    print("|---|---|---|")
    for name, all16, first1 in AT_16:
        print(f"| `{name}.onnx` | {all16} | {first1} |")


if __name__ == "__main__":
    main(sys.argv[1:])
