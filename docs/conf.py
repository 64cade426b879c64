"""Sphinx configuration of fastelbo's documentation: the user guide, the theory page and the API reference.

Build (from the repository root, against the installed package, warnings as errors)::

    pip install ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import re

from sphinx.util import logging

import fastelbo

logger = logging.getLogger(__name__)

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
# No "show-inheritance": the estimators' bases are internal classes (and any value of the option,
# False included, turns it on).
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"  # the numpydoc sections carry the types
numpydoc_show_class_members = False  # autosummary's class template lists the methods
numpydoc_attributes_as_param_list = True

exclude_patterns = ["_build"]
templates_path = []
html_theme = "alabaster"
html_static_path = []


def _skip_inherited_members(app, what, name, obj, skip, options):
    """Leave out the methods the estimators inherit from scikit-learn (``get_params``,
    ``set_params``, ``set_output``, metadata routing's ``get_metadata_routing`` and the generated
    ``set_*_request``): scikit-learn documents them, and their docstrings point into its own
    documentation. Likewise the warnings' ``add_note`` and ``with_traceback``, from Python's
    ``Exception``."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if getattr(obj, "__module__", None) and obj.__module__.split(".")[0] == "sklearn":
        return True
    if getattr(getattr(obj, "__objclass__", None), "__module__", None) == "builtins":
        return True
    return None


def _is_private(dotted_name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted_name.split("."))


def _drop_private_aliases(app, env):
    """Leave the internal modules' names of the public classes (``fastelbo.mixture._gaussian.FastGMM``,
    which autodoc records as the canonical name of ``fastelbo.FastGMM``) out of the object inventory
    (``objects.inv``) and the cross-reference targets: the reference documents the public names only."""
    objects = env.get_domain("py").objects
    for name in [name for name, entry in objects.items() if entry.aliased and _is_private(name)]:
        del objects[name]


def _internal_class_names() -> set[str]:
    """Names of the classes that fastelbo's modules define and no public module exports."""
    import importlib
    import importlib.machinery
    import importlib.util
    import inspect
    import pkgutil

    defined, public = set(), set(fastelbo.__all__)
    for info in pkgutil.walk_packages(fastelbo.__path__, "fastelbo."):
        spec = importlib.util.find_spec(info.name)
        if spec.origin and spec.origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            # A compiled kernel module: importing one built for a CPU level this machine lacks
            # (x86-64-v4 here on an AVX2 machine) would stop the process; fastelbo loads the
            # right one itself.
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency's module
            continue
        defined |= {
            name
            for name, value in vars(module).items()
            if inspect.isclass(value) and value.__module__ == module.__name__
        }
        if not _is_private(info.name):
            public |= set(getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")]))
    return {name for name in defined - public if not name.startswith("_")}


def internal_names_pattern() -> re.Pattern:
    """What no page may show: a dotted name with a private part (``fastelbo.mixture._truncated``), a
    private class (``_EMRun``), or a class that only internal modules define (``MixtureEstimator``,
    the estimators' base)."""
    internal = "|".join(sorted(_internal_class_names()))
    return re.compile(
        r"\bfastelbo(?:\.\w+)*\._(?!_)\w+|(?<![\w.])_[A-Z]\w*" + (rf"|\b(?:{internal})\b" if internal else "")
    )


def _check_no_internal_names(app, exception):
    """Warn (an error with ``-W``) where a page of the built HTML shows an internal name
    (:func:`internal_names_pattern`)."""
    if exception is not None or app.builder.format != "html":
        return
    import html
    import pathlib

    pattern = internal_names_pattern()
    outdir = pathlib.Path(app.outdir)
    for page in sorted(outdir.rglob("*.html")):
        if page.relative_to(outdir).parts[0] in ("_sources", "_static"):
            continue
        text = re.sub(r"<(script|style)\b.*?</\1>", " ", page.read_text(encoding="utf-8"), flags=re.S)
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
        found = sorted(set(pattern.findall(text)))
        if found:
            logger.warning("%s shows internal names: %s", page.relative_to(outdir), ", ".join(found))


def setup(app):
    app.connect("autodoc-skip-member", _skip_inherited_members)
    app.connect("env-updated", _drop_private_aliases)
    app.connect("build-finished", _check_no_internal_names)
