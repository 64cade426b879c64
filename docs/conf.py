"""Sphinx configuration of fastelbo's API reference.

Build (from the repository root, against the installed package, warnings as errors)::

    pip install ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import fastelbo

project = "fastelbo"
author = "The fastelbo developers"
copyright = "the fastelbo developers"  # noqa: A001 - Sphinx's name for it
release = fastelbo.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

# One page per public object, generated from its numpydoc docstring.
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": True, "show-inheritance": False}
autodoc_typehints = "none"  # the numpydoc sections carry the types
numpydoc_show_class_members = False  # autosummary's class template lists the methods
numpydoc_attributes_as_param_list = True

exclude_patterns = ["_build"]
templates_path = []
html_theme = "alabaster"
html_static_path = []


def _skip_scikit_learn_members(app, what, name, obj, skip, options):
    """Leave out the methods the estimators inherit from scikit-learn (``get_params``,
    ``set_params``, ``set_output``, metadata routing's ``get_metadata_routing`` and the generated
    ``set_*_request``): scikit-learn documents them, and their docstrings point into its own
    documentation."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if getattr(obj, "__module__", None) and obj.__module__.split(".")[0] == "sklearn":
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_scikit_learn_members)
