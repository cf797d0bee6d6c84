"""Symbolic shape and index arithmetic, one module for every pass and for `inspect`.

- `affine`: a*L + b over one dynamic length (run-time Slice ends after a conv).
- `residue`: affine forms over residue classes of dynamic dims (exact Div/Mod).
- `interpreter`: evaluates a graph's shape computations on those forms.
"""

from __future__ import annotations

from .affine import (
    SYMBOLIC_DEPTH, Affine, NotAffine, output_affine, shape_symbols, static_operands, symbolic, symbolic_op,
)
from .interpreter import (
    FLOAT_ONNX_TYPES, INT_TYPES, MALFORMED, MAX_SHAPE_NODES, MAX_VALUE_ELEMENTS, SHAPE_READERS, ShapeInterpreter, Sym,
    product, python_slice, sym_from_array, to_numpy,
)
from .residue import Domain, Lin, NeedPeriod, Unprovable, check_divisible, exact_quotient, trunc_div

__all__ = [
    "SYMBOLIC_DEPTH", "Affine", "NotAffine", "output_affine", "shape_symbols", "static_operands", "symbolic",
    "symbolic_op", "FLOAT_ONNX_TYPES", "INT_TYPES", "MALFORMED", "MAX_SHAPE_NODES", "MAX_VALUE_ELEMENTS",
    "SHAPE_READERS", "ShapeInterpreter", "Sym", "product", "python_slice", "sym_from_array", "to_numpy", "Domain",
    "Lin", "NeedPeriod", "Unprovable", "check_divisible", "exact_quotient", "trunc_div",
]
