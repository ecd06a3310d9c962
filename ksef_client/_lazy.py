"""Names of a package imported on first use (PEP 562): the package's ``__getattr__`` and ``__dir__``.

``import ksef_client`` and ``import ksef_client.mock`` stay cheap: a program (or a batch worker
process of the emulator) pays only for the modules whose names it uses.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(
    package: str, locations: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name of ``locations`` is imported from its
    module when first asked for and kept in the package (later lookups do not come here)."""

    def module_getattr(name: str) -> Any:
        location = locations.get(name)
        if location is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(location), name)
        setattr(sys.modules[package], name, value)
        return value

    def module_dir() -> list[str]:
        return list(names)

    return module_getattr, module_dir
