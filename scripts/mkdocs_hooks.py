"""mkdocs hooks: text that comes from the code, never typed by hand.

A line that is exactly ``<!-- kquant --help -->`` becomes the parser's own help, as
``kquant --help`` prints it (80 columns); the marker elsewhere (quoted in text) stays.
"""

from __future__ import annotations

import os

MARK = "<!-- kquant --help -->"


def on_page_markdown(markdown, page, config, files):
    if MARK not in markdown.split("\n"):
        return markdown
    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal's width
    from napari_kquant.cli._args import build_parser

    text = build_parser().format_help()
    lines = markdown.split("\n")
    return "\n".join(f"```text\n{text}```" if line == MARK else line for line in lines)
