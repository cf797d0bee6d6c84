"""Streaming Concat(state, x) -> depthwise Conv -> Slice(new state) as opset 27's CausalConvWithState: the match, and whether the installed onnx/onnxruntime know the op."""

from __future__ import annotations

import functools
import onnx
from onnx import NodeProto, helper

from ...conv import ConvAttrs
from ...graph import INT32_MAX, GraphView, attr, slice_operands
from ...refusal import Refusal


STATE_OP = "CausalConvWithState"


STATE_OPSET = 27


STATE_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)


def exclusive_nodes(view: GraphView, nodes: list[NodeProto], sink: NodeProto) -> list[NodeProto]:
    """The subset of `nodes` whose outputs are read only by that subset or by `sink` (they die with it)."""
    alive = {id(n): n for n in nodes}
    changed = True
    while changed:
        changed = False
        for key, node in list(alive.items()):
            for o in node.output:
                if not o:
                    continue
                if view.is_graph_output(o) or any(
                    u is not sink and id(u) not in alive for u in view.consumers_of(o)
                ):
                    del alive[key]
                    changed = True
                    break
    return list(alive.values())


def state_match(view: GraphView, conv: NodeProto, concat: NodeProto, attrs: ConvAttrs):
    """(state, x, new-state Slice or None) when Concat(state, x) -> Conv is a stateful causal conv; else Refusal."""
    if conv.op_type != "Conv":
        raise Refusal(f"{conv.op_type} is not a plain Conv", [concat])
    if attrs.rank != 1:
        raise Refusal("only 1-D convolutions have a stateful form", [concat])
    if len([i for i in concat.input if i]) != 2:
        raise Refusal("the Concat does not join exactly a state and an input", [concat])
    axis = attr(concat, "axis")
    if axis not in (2, -1):
        raise Refusal(f"the Concat joins axis {axis}, not the time axis", [concat])
    state, x = concat.input[0], concat.input[1]
    k = attrs.kernel_shape[0]
    wshape = view.shape(conv.input[1])
    channels = wshape.static(0) if wshape is not None else None
    if attrs.group != channels or (wshape is not None and wshape.static(1) != 1):
        raise Refusal("the conv is not depthwise with one output per channel", [concat])
    if attrs.strides[0] != 1 or attrs.dilations[0] != 1:
        raise Refusal("the conv is strided or dilated", [concat])
    if attrs.auto_pad not in ("NOTSET", "VALID") or (attrs.auto_pad == "NOTSET" and any(attrs.pads)):
        raise Refusal("the conv pads its input", [concat])
    sshape = view.shape(state)
    if sshape is None or sshape.static(2) != k - 1:
        raise Refusal(f"the state is not k-1 = {k - 1} steps long", [concat])
    if view.elem_type(x) not in STATE_TYPES:
        raise Refusal("the input type is not float, float16 or bfloat16", [concat])
    if view.is_graph_output(concat.output[0]):
        raise Refusal("the Concat output is a graph output", [concat])
    users = view.consumers_of(concat.output[0])
    others = [u for u in users if u is not conv]
    slc = None
    if others:
        if len(others) != 1 or others[0].op_type != "Slice" or others[0].input[0] != concat.output[0]:
            raise Refusal(f"the Concat output has {len(users)} consumers", [concat])
        slc = others[0]
        operands = slice_operands(view, slc)
        if operands is None:
            raise Refusal("the new-state Slice bounds are computed at run time", [concat])
        starts, ends, axes, steps = operands
        hshape = view.shape(concat.output[0])
        length = hshape.static(2) if hshape is not None else None
        keeps_tail = len(starts) == 1 and (
            (starts[0] == -(k - 1) and (ends[0] >= INT32_MAX or (length is not None and ends[0] == length)))
            or (length is not None and starts[0] == length - (k - 1) and ends[0] >= length)
        )
        # axes absent means axis 0, which is not the time axis.
        if not (keeps_tail and axes in ([2], [-1]) and steps in (None, [1])):
            raise Refusal(f"the Slice of the Concat does not keep exactly the last {k - 1} steps", [concat])
    return state, x, slc


@functools.lru_cache(maxsize=None)
def has_schema(op: str) -> bool:
    try:
        onnx.defs.get_schema(op, STATE_OPSET)
        return True
    except Exception:  # noqa: BLE001 - absent in this onnx
        return False


@functools.lru_cache(maxsize=None)
def state_runtime_note() -> str:
    """Say whether the installed onnxruntime can run an opset-27 model at all."""
    try:
        import onnxruntime as ort

        node = helper.make_node("Identity", ["x"], ["y"])
        graph = helper.make_graph([node], "probe", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", STATE_OPSET)], ir_version=10)
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except ImportError:
        return "no onnxruntime is installed to run it"
    except Exception:  # noqa: BLE001 - the runtime refuses the opset
        return (f"onnxruntime {ort.__version__} cannot run it (it does not support ai.onnx opset {STATE_OPSET}); "
                + ("onnx.reference.ReferenceEvaluator can" if _has_reference(STATE_OP) else
                   f"nor can onnx {onnx.__version__}'s reference evaluator"))
    return ""


@functools.lru_cache(maxsize=None)
def _has_reference(op: str) -> bool:
    """Whether the installed onnx's reference evaluator implements `op` (the only other way to run it)."""
    try:
        from onnx.reference.ops import load_op

        load_op("", op, STATE_OPSET)
        return True
    except Exception:  # noqa: BLE001 - not implemented in this onnx
        return False
