"""ganvas: image-to-image translation with GANs on PyTorch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public functions by the module that defines them, imported on first use: `import ganvas` stays
# light (no torch) for the CLI's --help and for tools that only read the version.
_LAZY = {
    "load": "ganvas.api",
    "Translator": "ganvas.api",
    "load_network": "ganvas.interop",
}

if TYPE_CHECKING:
    from ganvas.api import Translator, load  # noqa: F401 (lazy, listed in __all__)
    from ganvas.interop import load_network  # noqa: F401

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import a public function listed in _LAZY when it is first asked for."""
    if name not in _LAZY:
        raise AttributeError(f"module 'ganvas' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
