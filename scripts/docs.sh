#!/usr/bin/env bash
# Build the documentation site into site/ with mkdocs in strict mode: a warning (a broken
# link or anchor, a page left out of the nav, a docstring mkdocstrings cannot read) fails.
# Uses .venv (or $VENV), with the package's docs extra installed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
"$venv/bin/python" -m mkdocs build --strict --site-dir "${SITE_DIR:-site}" "$@"
