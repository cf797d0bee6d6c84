"""The package's shape: no module imports another module's private name; no source file over ~600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "convrewrite"
MAX_LINES = 600
# Files over the limit, each with the reason (see the issue-15 closing note).
OVER_LIMIT: dict[str, str] = {}


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: from {'.' * node.level}{node.module or ''} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(part.startswith("_") and not part.startswith("__") for part in alias.name.split(".")):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: import {alias.name}")
    return found


ALLOWED: set[str] = set()


def test_no_module_imports_a_private_name():
    found = [line for path in sources() for line in private_imports(path)
             if f"{line.split(':')[0]}: {line.split(': ', 1)[1]}" not in ALLOWED]
    assert not found, "\n".join(found)


def test_the_checker_finds_a_private_import():
    assert private_imports_text("from .passes.causal import _Plan\nimport os._private\nfrom . import __version__\n") == ["_Plan", "os._private"]


def private_imports_text(text: str) -> list[str]:
    tree = ast.parse(text)
    return [a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names
            if any(p.startswith("_") and not p.startswith("__") for p in a.name.split("."))]


def test_no_source_file_over_the_limit_without_a_reason():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in sources()}
    over = {name: n for name, n in sizes.items() if n > MAX_LINES and name not in OVER_LIMIT}
    assert not over, over
    stale = [name for name in OVER_LIMIT if sizes.get(name, 0) <= MAX_LINES]
    assert not stale, f"now under the limit, drop from OVER_LIMIT: {stale}"


TESTS = Path(__file__).resolve().parent
# Test folders that mirror top-level modules rather than a subpackage.
MODULE_FOLDERS = {"cli": "cli*.py", "layout": "layout_*.py and timing.py (bench)", "fuzz": "every pass at once"}
SUPPORT = {"data", "plugins", "__pycache__"}


def test_test_folders_mirror_the_package():
    """tests/X/ is convrewrite/X/ (or a top-level module group); tests/passes/Y/ is convrewrite/passes/Y(.py)."""
    strays = []
    for folder in sorted(p for p in TESTS.iterdir() if p.is_dir() and p.name not in SUPPORT):
        if not (PACKAGE / folder.name).is_dir() and folder.name not in MODULE_FOLDERS:
            strays.append(folder.name)
    for folder in sorted(p for p in (TESTS / "passes").iterdir() if p.is_dir() and p.name != "__pycache__"):
        if not (PACKAGE / "passes" / folder.name).is_dir() and not (PACKAGE / "passes" / f"{folder.name}.py").exists():
            strays.append(f"passes/{folder.name}")
    assert not strays, strays
    basenames = [p.name for p in TESTS.rglob("test_*.py")]
    assert len(basenames) == len(set(basenames)), "test files need distinct names (pytest's default import mode)"
