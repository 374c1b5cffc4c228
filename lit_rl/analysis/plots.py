"""Headless matplotlib for the tools' figures (the ``analysis`` extra)."""

from __future__ import annotations

import sys
from types import ModuleType


def pyplot_or_none() -> ModuleType | None:
    """``matplotlib.pyplot`` on the Agg backend, or ``None`` (with a one-line note naming the extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no figure: matplotlib is missing (pip install -e '.[analysis]')", file=sys.stderr)
        return None
    return plt
