"""mkdocs hooks: text that comes from the code, never typed by hand.

``<!-- kquant --help -->`` in a page becomes the parser's own help, as ``kquant --help``
prints it (80 columns).
"""

from __future__ import annotations

import os

MARK = "<!-- kquant --help -->"


def on_page_markdown(markdown, page, config, files):
    if MARK not in markdown:
        return markdown
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal's width
    from napari_kquant.cli._args import build_parser

    text = build_parser().format_help()
    return markdown.replace(MARK, f"```text\n{text}```")
