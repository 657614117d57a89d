"""The README, the hub page, the docs and the package say the same things, and every code
block of README.md and docs/ runs (conftest.py at the root: Sybil)."""

import importlib.util
import os
import re
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*path) -> str:
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


def script(name):
    """A module of scripts/, imported from its file."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "scripts", f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_fits_15_kb_and_starts_with_its_two_commands():
    readme = read("README.md")
    assert len(readme.encode()) <= 15_000
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/kquant -k 8 -o "
        "astronaut-k8.png",
        "bash scripts/test.sh",
    ]
    assert "bash scripts/test.sh" in read(".ci", "run")


def test_the_hub_page_is_generated_from_the_readme():
    description = script("hub_description").description
    assert read(".napari-hub", "DESCRIPTION.md") == description(read("README.md")), (
        "run scripts/hub_description.py"
    )


def test_python_versions_agree_everywhere():
    meta = tomllib.loads(read("pyproject.toml"))["project"]
    classified = sorted(
        c.rsplit(" ", 1)[1] for c in meta["classifiers"] if re.fullmatch(r".*:: 3\.\d+", c)
    )
    assert classified == ["3.11", "3.12", "3.13"]
    assert meta["requires-python"] == ">=3.11"
    workflow = read(".github", "workflows", "test_and_deploy.yml")
    matrices = re.findall(r"python-version: \[([^\]]+)\]", workflow)
    assert len(matrices) == 2  # the tests, and the clean-wheel install check
    for matrix in matrices:
        assert [v.strip(' "') for v in matrix.split(",")] == classified
    readme = read("README.md")
    assert "Python 3.11, 3.12 and 3.13" in readme
    assert "clean-wheel install check on Python 3.11, 3.12 and 3.13" in readme


def test_every_docs_page_is_in_the_site_and_the_cli_reference_comes_from_the_parser():
    config = read("mkdocs.yml")
    pages = sorted(name for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md"))
    nav = sorted(re.findall(r"^  - [^:]+: ([\w-]+\.md)$", config, flags=re.M))
    assert nav == pages
    assert "<!-- kquant --help -->" in read("docs", "cli.md").splitlines()
    on_page_markdown = script("mkdocs_hooks").on_page_markdown
    page = on_page_markdown("before\n<!-- kquant --help -->\nafter", None, None, None)
    help_text = subprocess.run(
        [sys.executable, "-m", "napari_kquant", "--help"], capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "80"}, check=True,
    ).stdout  # fmt: skip
    assert page == f"before\n```text\n{help_text}```\nafter"
    quoted = "the line `<!-- kquant --help -->` becomes the reference"
    assert on_page_markdown(quoted, None, None, None) == quoted


@pytest.mark.slow
def test_every_code_block_of_the_readme_and_the_docs_runs():
    """In a pytest process of their own: the pages create napari viewers as a reader does
    (``napari.Viewer``), which registers the plugin's commands once per process; in this
    process the viewer fixtures of other tests have registered them already."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "README.md", "docs"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-5_000:]
