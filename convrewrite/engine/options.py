"""Typed options: each rule declares its own; a run holds the values of every declared one.

Why one bag per run: several rules read the same option (`layout` for both
lifts), and a caller passes them once. Why declared: an option nobody
declares is a typo, and says so instead of being silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import ConvRewriteError


@dataclass(frozen=True)
class Option:
    """One option a rule reads: its name, type, default, allowed values and help text."""

    name: str
    type: type
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None

    def validate(self, value: Any) -> Any:
        if value is None and self.default is None:
            return None
        if self.type is bool and value in (0, 1) and not isinstance(value, bool):
            value = bool(value)
        if not isinstance(value, self.type):
            raise ConvRewriteError(f"option {self.name} must be {self.type.__name__}, not {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ConvRewriteError(f"option {self.name} must be one of {', '.join(map(repr, self.choices))}, not {value!r}")
        return value


# Shared by every rule with a finite-math rewrite (one that is exact only when no input is Inf or NaN;
# the Pad moved across DynamicQuantizeLinear also needs an input range that is not wholly subnormal).
ASSUME_FINITE = Option("assume_finite", bool, False,
                       "allow finite-math rewrites: outputs may differ where an input is Inf or NaN (or wholly subnormal)")


class PassOptions:
    """The option values of one run: every option some registered rule declares, defaults filled."""

    def __init__(self, **values: Any) -> None:
        from .registry import known_options

        known = known_options()
        unknown = sorted(set(values) - set(known))
        if unknown:
            names = ", ".join(sorted(known)) or "none"
            raise ConvRewriteError(f"unknown option {unknown[0]!r} (known options: {names})")
        for name, option in known.items():
            setattr(self, name, option.validate(values[name]) if name in values else option.default)

    def __repr__(self) -> str:
        return f"PassOptions({', '.join(f'{k}={v!r}' for k, v in sorted(vars(self).items()))})"


def merge_options(declared: Iterable[Option]) -> dict[str, Option]:
    """Options by name; two rules declaring the same name must agree on its type and default."""
    out: dict[str, Option] = {}
    for option in declared:
        seen = out.get(option.name)
        if seen is not None and (seen.type, seen.default) != (option.type, option.default):
            raise ConvRewriteError(f"option {option.name} is declared twice with different types or defaults")
        out.setdefault(option.name, option)
    return out
