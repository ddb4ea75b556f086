"""The API reference lists exactly the public names, and every gallery example is a titled script."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API_RST = ROOT / "docs" / "api.rst"
EXAMPLES = ROOT / "examples"

#: Modules whose ``__all__`` is the public API documented in docs/api.rst.
DOCUMENTED_MODULES = [
    "hadasklearn",
    "hadasklearn.datasets",
    "hadasklearn.exceptions",
    "hadasklearn.landmarks",
    "hadasklearn.model_selection",
    "hadasklearn.nn",
    "hadasklearn.stats",
    "hadasklearn.study",
    "hadasklearn.utils",
    "hadasklearn.video",
]


def _api_entries(text):
    """Qualified names listed in the autosummary blocks of an rst file."""
    entries, module, in_summary = [], None, False
    for line in text.splitlines():
        current = re.match(r"\.\. currentmodule:: (\S+)", line)
        if current:
            module = current.group(1)
            continue
        if line.startswith(".. autosummary::"):
            in_summary = True
            continue
        if in_summary:
            if not line.strip() or line.strip().startswith(":"):
                continue
            if line.startswith("   "):
                entries.append(f"{module}.{line.strip()}")
                continue
            in_summary = False
    return entries


def _public_names():
    names = []
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        names += [f"{module_name}.{name}" for name in module.__all__ if not name.startswith("__")]
    return names


def test_api_entries_parser():
    text = ".. currentmodule:: pkg\n\n.. autosummary::\n   :toctree: generated/\n\n   A\n   b\n\nProse\n   C\n"
    assert _api_entries(text) == ["pkg.A", "pkg.b"]


def test_every_public_name_is_in_the_api_reference():
    listed = set(_api_entries(API_RST.read_text(encoding="utf-8")))
    missing = [name for name in _public_names() if name not in listed]
    assert not missing, f"add these public names to docs/api.rst: {missing}"


def test_api_reference_lists_only_public_names_once():
    entries = _api_entries(API_RST.read_text(encoding="utf-8"))
    duplicates = sorted({name for name in entries if entries.count(name) > 1})
    assert not duplicates, f"listed more than once in docs/api.rst: {duplicates}"
    unknown = sorted(set(entries) - set(_public_names()))
    assert not unknown, f"docs/api.rst lists names that are not in their module's __all__: {unknown}"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("plot_*.py")), ids=lambda p: p.name)
def test_gallery_example_has_a_title_and_no_private_imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc, f"{path.name} needs a module docstring (the gallery page's title and intro)"
    title, underline = doc.splitlines()[:2]
    assert underline and set(underline) == {"="} and len(underline) >= len(title), (
        f"{path.name}: the docstring must start with a title underlined by '=' characters"
    )
    private = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and any(p.startswith("_") for p in node.module.split("."))
    ]
    assert not private, f"{path.name} imports private modules {private}; examples use the public API"
