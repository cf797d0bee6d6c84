"""Affine forms over residue classes of dynamic dims: exact arithmetic on shapes with unknown sizes.

Why: proving a SpaceToBatch lowering exact for every length means showing
that Div, Mod and Slice bounds agree for every value of a dynamic dim; each
dim is split into residue classes mod a period, and within a class every
shape value is an affine form `c + sum k_i * q_i`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..refusal import Refusal

class Unprovable(Refusal):
    """A step whose exactness cannot be shown; the message says why."""


class NeedPeriod(Exception):
    """A Div/Mod needs a longer residue period on one dynamic dim."""

    def __init__(self, var: int, factor: int) -> None:
        super().__init__(f"period of variable {var} x{factor}")
        self.var = var
        self.factor = factor


@dataclass(frozen=True)
class Lin:
    """`c + sum(k[v] * q[v])`: an integer (or a float constant) exact on one residue class."""

    c: int | float
    k: tuple[int, ...]

    def is_const(self) -> bool:
        return not any(self.k)

    def __add__(self, other: "Lin") -> "Lin":
        return Lin(self.c + other.c, tuple(a + b for a, b in zip(self.k, other.k)))

    def __sub__(self, other: "Lin") -> "Lin":
        return Lin(self.c - other.c, tuple(a - b for a, b in zip(self.k, other.k)))

    def __neg__(self) -> "Lin":
        return Lin(-self.c, tuple(-a for a in self.k))

    def scale(self, n: int) -> "Lin":
        return Lin(self.c * n, tuple(a * n for a in self.k))


@dataclass
class Domain:
    """The input sizes one evaluation covers: dim v = period[v]*q_v + residue[v], q_v >= qmin[v].

    Period 0 pins a dim to one size (residue). Decisions made on a domain stay
    valid when qmin is raised later (they hold on a superset).
    """

    period: tuple[int, ...]
    residue: tuple[int, ...]
    qmin: list[int]

    @property
    def nvars(self) -> int:
        return len(self.period)

    def const(self, c: int | float) -> Lin:
        return Lin(c, (0,) * self.nvars)

    def var(self, v: int) -> Lin:
        k = [0] * self.nvars
        k[v] = self.period[v]
        return Lin(self.residue[v], tuple(k))

    def bounds(self, x: Lin) -> tuple[int | None, int | None]:
        """(min, max) of x over the domain; None where unbounded."""
        at_min = x.c + sum(k * q for k, q in zip(x.k, self.qmin))
        lo = at_min if all(k >= 0 for k in x.k) else None
        hi = at_min if all(k <= 0 for k in x.k) else None
        return lo, hi

    def ge(self, a: Lin, b: Lin, what: str = "a comparison") -> bool:
        """Whether a >= b, when the answer is the same on the whole domain."""
        lo, hi = self.bounds(a - b)
        if lo is not None and lo >= 0:
            return True
        if hi is not None and hi < 0:
            return False
        raise Unprovable(f"{what} depends on the input size")

    def eq(self, a: Lin, b: Lin, what: str = "a comparison") -> bool:
        d = a - b
        if d.is_const():
            return d.c == 0
        lo, hi = self.bounds(d)
        if (lo is not None and lo > 0) or (hi is not None and hi < 0):
            return False
        raise Unprovable(f"{what} depends on the input size")

    def nonneg(self, x: Lin) -> bool:
        lo, _ = self.bounds(x)
        return lo is not None and lo >= 0

    def require_positive(self, x: Lin, what: str) -> None:
        """Restrict the domain to the sizes where x >= 1 (the original model fails elsewhere)."""
        if x.is_const():
            if x.c < 1:
                raise Unprovable(f"{what} is empty")
            return
        used = [v for v, k in enumerate(x.k) if k]
        if len(used) == 1 and x.k[used[0]] > 0:
            v = used[0]
            need = -(-(1 - x.c) // x.k[v])
            self.qmin[v] = max(self.qmin[v], need)
            return
        lo, _ = self.bounds(x)
        if lo is None or lo < 1:
            raise Unprovable(f"{what} may be empty")


def check_divisible(x: Lin, d: int) -> None:
    for v, k in enumerate(x.k):
        if k % d:
            raise NeedPeriod(v, d // math.gcd(k, d))


def trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def exact_quotient(a: Lin, b: Lin) -> Lin | None:
    """a / b when it is an exact affine form (b constant dividing every term, or a = n*b)."""
    if b.is_const():
        if b.c == 0 or any(k % b.c for k in a.k) or a.c % b.c:
            return None
        return Lin(a.c // b.c, tuple(k // b.c for k in a.k))
    ratio = None
    for ak, bk in zip((a.c,) + a.k, (b.c,) + b.k):
        if bk == 0:
            if ak != 0:
                return None
            continue
        if ak % bk:
            return None
        r = ak // bk
        if ratio is None:
            ratio = r
        elif r != ratio:
            return None
    return None if ratio is None else Lin(ratio, (0,) * len(a.k))
