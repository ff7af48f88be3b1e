"""The translators stay pure: no I/O imports, and each package exports what it names."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import aigw.translate

TRANSLATE = Path(aigw.translate.__file__).parent
# Data in, data out: the standard library's pure parts, orjson and our own value types.
ALLOWED = {
    "__future__",
    "base64",
    "binascii",
    "collections",
    "dataclasses",
    "functools",
    "hashlib",
    "re",
    "struct",
    "time",
    "typing",
    "urllib",
    "uuid",
    "orjson",
}
ALLOWED_OWN = ("aigw.translate", "aigw.usage")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted(TRANSLATE.rglob("*.py")), ids=lambda p: str(p.relative_to(TRANSLATE))
)
def test_translators_import_nothing_that_does_io(path: Path) -> None:
    for name in _imports(path):
        own = name.startswith(ALLOWED_OWN)
        assert own or name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"


@pytest.mark.parametrize("package", ["aigw.translate.anthropic", "aigw.translate.gemini"])
def test_packages_export_their_public_names(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None
