"""Small Qt helpers shared by the dock's parts."""

from __future__ import annotations


def alive(widget) -> bool:
    """False once a Qt widget was deleted (its dock or viewer closed): late signals from
    worker threads must then touch nothing."""
    try:
        widget.objectName()
    except RuntimeError:
        return False
    return True
