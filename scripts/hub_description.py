"""Write .napari-hub/DESCRIPTION.md (the napari hub's page) from README.md's sections, so the
two never disagree. tests/test_docs.py fails when the file is not what this writes.

    .venv/bin/python scripts/hub_description.py
"""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE = "https://napari-kquant.github.io/napari-kquant/"
REPO = "https://github.com/napari-kquant/napari-kquant/blob/main/"
SECTIONS = ("Three first uses", "What it does")


def description(readme: str) -> str:
    """The hub page: the README's opening paragraph and picture, then its SECTIONS, with
    links to pages of docs/ pointed at the site and other relative links at the repository."""
    intro = readme.split("\n## ", 1)[0].split("\n\n")
    parts = ["# K-means quantization for napari", intro[1], intro[2]]
    for title in SECTIONS:
        section = readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
        parts.append(f"## {title}\n{section.rstrip()}")
    text = "\n\n".join(part.strip("\n") for part in parts) + "\n"
    text = re.sub(r"<!-- invisible-code-block: python\n.*?-->\n\n", "", text, flags=re.S)
    page = rf"\]\((?:{re.escape(REPO)})?docs/([\w-]+)\.md(#[\w-]+)?\)"
    text = re.sub(page, rf"]({SITE}\1/\2)", text)
    return re.sub(r"\]\((?!https?://|#)([^)]+)\)", rf"]({REPO}\1)", text)


def main() -> None:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = description(f.read())
    with open(os.path.join(ROOT, ".napari-hub", "DESCRIPTION.md"), "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
