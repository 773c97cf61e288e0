"""Plots as PNG bytes, drawn off-screen (no display is needed)."""

from __future__ import annotations

import io
from collections.abc import Callable


def figure_png(draw: Callable, width: float, height: float, dpi: int = 110) -> bytes:
    """Run `draw(fig, ax)` on a new figure of that size; the figure as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    try:
        draw(fig, ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()
