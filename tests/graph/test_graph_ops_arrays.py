"""squeeze_array / unsqueeze_array: the one Squeeze/Unsqueeze on arrays (constant folds, symbolic evaluators)."""

from __future__ import annotations

import numpy as np

from convrewrite.graph import squeeze_array, unsqueeze_array


def test_unsqueeze_places_output_axes_in_order_negative_ones_too():
    a = np.arange(6).reshape(2, 3)
    assert unsqueeze_array(a, [0, 3]).shape == (1, 2, 3, 1)
    assert unsqueeze_array(a, [-1, 0]).shape == (1, 2, 3, 1)
    assert np.array_equal(unsqueeze_array(a, [1]).reshape(2, 3), a)


def test_squeeze_given_axes_or_every_unit_axis():
    a = np.zeros((1, 2, 1, 3))
    assert squeeze_array(a, [-2]).shape == (1, 2, 3)
    assert squeeze_array(a, None).shape == (2, 3)
    objs = np.empty((1, 2), dtype=object)
    objs[0, 0], objs[0, 1] = "a", "b"
    assert squeeze_array(objs, [0]).tolist() == ["a", "b"]  # symbolic values (object arrays) alike
