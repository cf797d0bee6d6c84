"""The registry: every rule by name, with what it declares (phase, order, options, repeat).

Everything that lists rules asks here: the pipeline, the CLI's `--fold`
choices, help text and `--fold all`, `inspect`, option checking. Rules come
from the built-in `convrewrite.passes` modules, from the `convrewrite.rules`
entry-point group of installed distributions, and from `register_rule` calls.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib import metadata
from typing import Any, Callable

from ..errors import ConvRewriteError
from .options import Option, merge_options

ENTRY_POINT_GROUP = "convrewrite.rules"
# lower: reduce rank before the folds; fold: canonical patterns (`--fold`);
# lift: raise rank last; extra: run only when named (`--pass NAME`), after the others.
PHASES = ("lower", "fold", "lift", "extra")
BUILTIN_PACKAGE = "convrewrite.passes"  # every module in it is imported: a new rule file registers itself

REGISTRY: dict[str, Callable[[], Any]] = {}
_loaded = {"builtin": False, "entry_points": False}


def register(cls):
    """Class decorator: make a rule available by its `name` (checks what it declares)."""
    name = getattr(cls, "name", "")
    if not name or not isinstance(name, str):
        raise ConvRewriteError(f"rule {cls!r} declares no name")
    phase = getattr(cls, "phase", "extra")
    if phase not in PHASES:
        raise ConvRewriteError(f"rule {name}: phase must be one of {', '.join(PHASES)}, not {phase!r}")
    if not callable(getattr(cls, "run", None)):
        raise ConvRewriteError(f"rule {name}: has no run(ctx) method")
    REGISTRY[name] = cls
    return cls


def register_rule(rule: type) -> type:
    """Make a rule class (a `convrewrite.engine.Rule` subclass) available to `rewrite`, the CLI and `inspect`.

    The in-process twin of the `convrewrite.rules` entry-point group; a rule
    registered under an existing name replaces it.
    """
    load_rules()
    return register(rule)


def unregister_rule(name: str) -> None:
    """Forget a rule registered by name (tests; a plugin that replaced a built-in leaves it forgotten)."""
    REGISTRY.pop(name, None)


def load_rules() -> None:
    """Import the built-in rules and the installed plugins, once."""
    if not _loaded["builtin"]:
        _loaded["builtin"] = True
        package = importlib.import_module(BUILTIN_PACKAGE)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")
    if not _loaded["entry_points"]:
        _loaded["entry_points"] = True
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                rule = ep.load()
            except Exception as exc:  # a broken plugin is named, not a traceback
                raise ConvRewriteError(f"rule plugin {ep.name} ({ep.value}) cannot be loaded: {exc}") from exc
            register(rule)


def reload_entry_points() -> None:
    """Read the entry-point group again (after installing a plugin into a running process)."""
    _loaded["entry_points"] = False
    load_rules()


def rule(name: str) -> Any:
    """The registered rule class called `name`."""
    load_rules()
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise ConvRewriteError(f"unknown pass {name!r} (known: {known})") from None


def rule_names(phase: str | None = None) -> list[str]:
    """Registered rule names of one phase (or all), in run order within the phase (by `order`, then name)."""
    load_rules()
    names = [n for n, r in REGISTRY.items() if phase is None or getattr(r, "phase", "extra") == phase]
    if phase is None:
        return sorted(names)
    return sorted(names, key=lambda n: (getattr(REGISTRY[n], "order", 100), n))


def fold_order() -> list[str]:
    """What `--fold all` runs, in this order."""
    return rule_names("fold")


def repeating(names: list[str]) -> list[str]:
    """Those of `names` whose rules repeat until a round rewrites nothing."""
    return [n for n in names if getattr(rule(n), "repeat", False)]


def known_options() -> dict[str, Option]:
    """Every option some registered rule declares, by name."""
    load_rules()
    return merge_options(o for r in REGISTRY.values() for o in getattr(r, "options", ()))


def describe_rules(phase: str | None = None) -> list[tuple[str, str]]:
    """(name, description) of each rule, for help text."""
    return [(n, getattr(REGISTRY[n], "description", "")) for n in rule_names(phase)]


def expand_pass_names(passes) -> list[str]:
    """Resolve names (and 'all' = every fold) into the pass order to run."""
    out: list[str] = []
    for name in passes:
        names = fold_order() if name == "all" else [name]
        for n in names:
            rule(n)
            if n not in out:
                out.append(n)
    return out
