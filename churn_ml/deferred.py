"""Modules named at the top of a file but imported on first use.

scikit-learn (with the SciPy it imports) is ~86 MB of resident memory per process and pandas
~45 MB, and a web worker that scores single records needs neither: the request path uses the
compiled scorer, plain numpy and Python. Modules that need them for some of their functions
(pandas for a batch's column validation, scikit-learn's metrics for a report, training for a
retraining run) name them with :func:`deferred` at their top, so the dependency stays visible
and import-time cheap; whichever process first calls such a function pays the import once.
(importlib.util.LazyLoader would still import the parent package, i.e. all of sklearn, to find
a submodule's spec.)
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class DeferredModule:
    """Stands for module ``name``; the first attribute read imports it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        value = getattr(module, attribute)
        # Kept on the instance: later reads are plain attribute lookups, never this method again.
        setattr(self, attribute, value)
        return value

    def __repr__(self) -> str:
        return f"<deferred module {self._name!r}{' (imported)' if self._module else ''}>"


def deferred(name: str) -> Any:
    return DeferredModule(name)
