"""How far folding per-channel affine followers (BatchNorm, scale Mul, bias Add/Sub) can move a conv's outputs.

Why: the original computes each follower in the model's dtype on the conv's
output, the folded conv computes weights and bias rounded once. Both round
terms as large as the intermediates (a BatchNorm's mean times its scale, a
bias of 1e6 that a later Add cancels), so when those are large against the
final output the two disagree beyond any tolerance although each fold is
algebraically exact. The bound per output channel, for a unit-size input
(the conv's output magnitude is |bias| + |scale| * ||weights||_2), after a
follower y -> s*y + t whose terms reach E (|s*mean| + |beta| for a BatchNorm):

    err' = |s| * err + 2u * (|s| * |y| + E)

with u the dtype's unit roundoff; the fold is kept when err stays within the
dtype's default tolerance (atol + rtol * output magnitude) in every channel.
"""

from __future__ import annotations

import numpy as np

from ...conv import ConvAttrs

# Unit roundoff and default (atol, rtol) by dtype name: float32's is the checker's and the tests' default.
ROUNDOFF = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "float32": 2.0 ** -24, "float64": 2.0 ** -53}
TOLERANCE = {"float16": (1e-3, 1e-2), "bfloat16": (1e-2, 1e-1), "float32": (1e-5, 1e-4), "float64": (1e-12, 1e-9)}


def channel_norms(w: np.ndarray, attrs: ConvAttrs, m: int) -> np.ndarray:
    """The L2 norm of each output channel's filter."""
    if not attrs.transposed:
        return np.sqrt((w.reshape(m, -1) ** 2).sum(axis=1))
    g = attrs.group
    grouped = w.reshape(g, w.shape[0] // g, w.shape[1], -1)
    return np.sqrt((grouped ** 2).sum(axis=(1, 3))).reshape(m)


class ChainBound:
    """The error bound of folding a chain of followers into one conv, step by step."""

    def __init__(self, w: np.ndarray | None, b: np.ndarray, attrs: ConvAttrs, dtype: np.dtype) -> None:
        m = b.size
        self.name = np.dtype(dtype).name
        self.u = ROUNDOFF.get(self.name, 2.0 ** -24)
        self.atol, self.rtol = TOLERANCE.get(self.name, TOLERANCE["float32"])
        self.w_norm = channel_norms(w, attrs, m) if w is not None else np.zeros(m)
        self.b = b.astype(np.float64).copy()
        self.err = np.zeros(m)

    def step(self, scale: np.ndarray | None, shift: np.ndarray | None, extra) -> None:
        s = np.abs(scale) if scale is not None else np.ones_like(self.b)
        y = np.abs(self.b) + self.w_norm
        self.err = s * self.err + 2 * self.u * (s * y + np.abs(extra))
        self.w_norm = self.w_norm * s
        self.b = (self.b * scale if scale is not None else self.b) + (shift if shift is not None else 0.0)

    def problem(self) -> str | None:
        """Why the folded chain may leave the tolerance, or None."""
        out = np.abs(self.b) + self.w_norm
        limit = self.atol + self.rtol * out
        worst = int(np.argmax(self.err / limit))
        if self.err[worst] <= limit[worst]:
            return None
        return (f"folding could move outputs by up to {self.err[worst]:.3g} where they are about {out[worst]:.3g} "
                f"(channel {worst}; beyond {self.name}'s tolerance atol {self.atol:g} rtol {self.rtol:g})")
