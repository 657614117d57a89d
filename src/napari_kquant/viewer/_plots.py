"""Small Qt helpers shared by the dock's parts."""

from __future__ import annotations


def plot_canvas():
    """A small matplotlib canvas for the dock (matplotlib imported here, when first used)."""
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    canvas = FigureCanvasQTAgg(Figure(figsize=(3.2, 2.2), layout="constrained"))
    canvas.setMinimumHeight(180)
    return canvas


def alive(widget) -> bool:
    """False once a Qt widget was deleted (its dock or viewer closed): late signals from
    worker threads must then touch nothing."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True
