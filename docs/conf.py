"""Sphinx configuration of the hadasklearn documentation (numpydoc + sphinx-gallery, scikit-learn style)."""

import os
import sys
from datetime import date

sys.path.insert(0, os.path.abspath(".."))
import hadasklearn  # noqa: E402

project = "hadasklearn"
author = "hadasklearn developers"
copyright = f"{date.today().year}, {author}"
version = release = hadasklearn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

# HADASKLEARN_DOCS_FAST=1 (CI): the same pages and the same gallery (every example still runs, so a
# broken example fails the build), without the highlighted-source pages of ``viewcode``.
FAST = os.environ.get("HADASKLEARN_DOCS_FAST", "0") not in ("", "0")
if FAST:
    extensions.remove("sphinx.ext.viewcode")
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["dollarmath"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Cross-references inside numpydoc type fields are resolved loosely: types such as
# "array-like of shape (n, m)" are prose, not Python objects.
numpydoc_xref_param_type = False
templates_path = ["_templates"]
exclude_patterns = ["_build", "generated/*.examples", "**.ipynb_checkpoints"]
html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_title = f"hadasklearn {version}"

# No network at build time: intersphinx inventories are not fetched.
intersphinx_mapping = {}

# The gallery runs every example (small, CPU), in fast mode too; the plotting backend is pinned.
os.environ.setdefault("MPLBACKEND", "Agg")
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
    # "Examples using X" lists on the API pages (included by docs/_templates/autosummary/*.rst).
    "backreferences_dir": "generated",
    "doc_module": ("hadasklearn",),
    "reference_url": {"hadasklearn": None},
    "min_reported_time": 1,
}
suppress_warnings = ["config.cache"]
