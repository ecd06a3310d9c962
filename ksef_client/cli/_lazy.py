"""Names the ``ksef`` commands import on first use, so that ``ksef --help`` and usage errors load
click and nothing of the SDK or httpx (issue 18: start-up over a bare interpreter)."""

from __future__ import annotations

from importlib import import_module
from typing import Any


class Lazy:
    """A module (``name=None``) or a module's attribute, imported when first called or looked into."""

    def __init__(self, module: str, name: str | None = None) -> None:
        self._module, self._name = module, name
        self._target: Any = None

    def _resolve(self) -> Any:
        if self._target is None:
            module = import_module(self._module)
            self._target = module if self._name is None else getattr(module, self._name)
        return self._target

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._resolve(), attribute)
