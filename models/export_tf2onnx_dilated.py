"""Real tf2onnx exports of dilated convolutions (the `tf2onnx_*` models), for the `dilated` pass.

Not run by CI: it needs TensorFlow. Run it in its own virtual environment:

    python -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 onnxruntime==1.31.1
    /tmp/tfenv/bin/python models/export_tf2onnx_dilated.py [NAME_SUBSTRING ...]

Keras 3.15.1 (installed with TensorFlow 2.21) models and raw `tf.function`s,
converted by `tf2onnx.convert.from_keras` / `from_function` at opset 13 with
its default settings, with a dynamic batch and spatial size where the name
says `_dyn`. With a dynamic size and 'same' padding tf2onnx cannot fold TF's
`SpaceToBatchND -> Conv -> BatchToSpaceND` back into a dilated conv, so these
graphs hold the real lowering: the paddings arithmetic of TF's
`required_space_to_batch_paddings` (its floormod written as Div/Mul/Sub), the
generic (1-D, or a [1, d] block) or square (SpaceToDepth) converter, and
what tf2onnx's transpose optimizer made of them (for example `Shape` of the
inner conv's output through a `Gather`, not of the Transpose after it). The
models/make_dilated_models.py builders write these forms by hand; the
exports here are the reference they are checked against.

Weights are random (numpy seeds, biases non-zero so the bias Add stays in the
graph). Each NAME.npz holds the input (an odd size that is not a multiple of
the block) and TensorFlow's own output; `_common.save` checks that
onnxruntime agrees with it. Two runs write the same graphs (op types, names
of nodes, wiring, attributes, constant values and weights) except for the
names tf2onnx picks for the constants it shares between nodes, which vary
from run to run.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _tf():
    import keras
    import tensorflow as tf
    import tf2onnx

    return tf, keras, tf2onnx


def _randomize(model, seed):
    """Uniform(-0.5, 0.5) for every weight, biases included (Keras initializes biases to 0)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])


def _keras(name, layers, in_shape, x, seed):
    tf, keras, tf2onnx = _tf()
    keras.backend.clear_session()
    inp = keras.Input(shape=in_shape, name="x")
    h = inp
    for layer in layers():
        h = layer(h)
    model = keras.Model(inp, h, name="model")
    _randomize(model, seed)
    spec = [tf.TensorSpec([None, *in_shape], tf.float32, name="x")]
    path = os.path.join(HERE, name + ".onnx")
    onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=path)
    y = model(x).numpy()
    _save(name, path, onnx_model, x, y)


def _function(name, fn, spec_shape, x):
    tf, _, tf2onnx = _tf()
    spec = [tf.TensorSpec(spec_shape, tf.float32, name="x")]
    path = os.path.join(HERE, name + ".onnx")
    onnx_model, _ = tf2onnx.convert.from_function(tf.function(fn), input_signature=spec, opset=13, output_path=path)
    y = fn(tf.constant(x)).numpy()
    _save(name, path, onnx_model, x, y)


def _save(name, path, onnx_model, x, y):
    from _common import save

    assert [i.name for i in onnx_model.graph.input] == ["x"], [i.name for i in onnx_model.graph.input]
    save(name, path, {"x": x}, {onnx_model.graph.output[0].name: y})


def _x(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def conv1d(d):
    def make():
        _, keras, _ = _tf()
        _keras(f"tf2onnx_k3_conv1d_d{d}_same_dyn",
               lambda: [keras.layers.Conv1D(8, 3, padding="same", dilation_rate=d, name="conv1d")],
               (None, 6), _x(d, 2, 37, 6), seed=800 + d)

    make.__name__ = f"tf2onnx_k3_conv1d_d{d}_same_dyn"
    return make


def sepconv1d(d):
    def make():
        _, keras, _ = _tf()
        _keras(f"tf2onnx_k3_sepconv1d_d{d}_same_dyn",
               lambda: [keras.layers.SeparableConv1D(8, 3, padding="same", dilation_rate=d, name="sepconv1d")],
               (None, 6), _x(10 + d, 2, 37, 6), seed=810 + d)

    make.__name__ = f"tf2onnx_k3_sepconv1d_d{d}_same_dyn"
    return make


def tf2onnx_k3_conv1d_stack_dyn():
    """4 x Conv1D(8, 3, padding='same', dilation_rate=d, activation='relu'), d = 2, 4, 8, 16
    (the benchmark's stack, 8 channels)."""
    _, keras, _ = _tf()
    _keras("tf2onnx_k3_conv1d_stack_dyn",
           lambda: [keras.layers.Conv1D(8, 3, padding="same", dilation_rate=d, activation="relu", name=f"conv1d_d{d}")
                    for d in (2, 4, 8, 16)],
           (None, 8), _x(20, 1, 45, 8), seed=820)


def tf2onnx_k3_conv2d_d2_same_dyn():
    _, keras, _ = _tf()
    _keras("tf2onnx_k3_conv2d_d2_same_dyn",
           lambda: [keras.layers.Conv2D(6, 3, padding="same", dilation_rate=2, name="conv2d")],
           (None, None, 4), _x(30, 2, 11, 14, 4), seed=830)


def _filters(seed, *shape):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, shape).astype(np.float32)


def tf2onnx_tf_atrous_conv2d_r3_same_dyn():
    tf, _, _ = _tf()
    f = _filters(840, 2, 2, 4, 5)
    _function("tf2onnx_tf_atrous_conv2d_r3_same_dyn",
              lambda x: tf.nn.atrous_conv2d(x, tf.constant(f), rate=3, padding="SAME"),
              [None, None, None, 4], _x(40, 2, 10, 13, 4))


def tf2onnx_tf_atrous_conv2d_r2_valid_dyn():
    """VALID with a dynamic size: tf2onnx's rewriter folds this one itself (no lowering left)."""
    tf, _, _ = _tf()
    f = _filters(850, 3, 3, 4, 5)
    _function("tf2onnx_tf_atrous_conv2d_r2_valid_dyn",
              lambda x: tf.nn.atrous_conv2d(x, tf.constant(f), rate=2, padding="VALID"),
              [None, None, None, 4], _x(50, 2, 11, 14, 4))


def tf2onnx_tf_convolution1d_d3_same_dyn():
    """tf.nn.convolution 1-D, dilation 3 (an odd block), SAME, dynamic length."""
    tf, _, _ = _tf()
    f = _filters(860, 3, 6, 8)
    _function("tf2onnx_tf_convolution1d_d3_same_dyn",
              lambda x: tf.nn.convolution(x, tf.constant(f), padding="SAME", dilations=[3]),
              [None, None, 6], _x(60, 2, 37, 6))


def tf2onnx_tf_s2b_conv2d_static():
    """Hand-written space_to_batch_nd(block 2, pads [[2, 4], [2, 4]]) -> conv2d(3x3, VALID) ->
    batch_to_space_nd(crops [[0, 2], [0, 2]]) on a static [2, 12, 12, 4] input."""
    tf, _, _ = _tf()
    f = _filters(870, 3, 3, 4, 5)

    def fn(x):
        h = tf.space_to_batch_nd(x, [2, 2], [[2, 4], [2, 4]])
        h = tf.nn.conv2d(h, tf.constant(f), 1, "VALID")
        return tf.compat.v1.batch_to_space_nd(h, [2, 2], [[0, 2], [0, 2]])

    _function("tf2onnx_tf_s2b_conv2d_static", fn, [2, 12, 12, 4], _x(70, 2, 12, 12, 4))


MODELS = [
    conv1d(2),
    conv1d(4),
    sepconv1d(2),
    sepconv1d(4),
    tf2onnx_k3_conv1d_stack_dyn,
    tf2onnx_k3_conv2d_d2_same_dyn,
    tf2onnx_tf_atrous_conv2d_r3_same_dyn,
    tf2onnx_tf_atrous_conv2d_r2_valid_dyn,
    tf2onnx_tf_convolution1d_d3_same_dyn,
    tf2onnx_tf_s2b_conv2d_static,
]


def main(filters):
    from _common import make_all

    tf, keras, tf2onnx = _tf()
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, tf2onnx {tf2onnx.__version__}")
    make_all(MODELS, filters)


if __name__ == "__main__":
    main(sys.argv[1:])
