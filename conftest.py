"""Every code block of README.md and docs/*.md runs in the test suite (Sybil).

Each page runs in order as a reader would, in its own empty folder, with one Python
namespace for the page:

- ```python blocks run; those written as ``>>>`` sessions are doctests, so the outputs the
  page shows are checked (``...`` stands for any text, whitespace is normalised);
- ```console blocks: each ``$ command`` runs in bash (the test's Python first on PATH, so
  ``kquant`` and ``python`` are this environment's) and must exit 0; the lines after it
  are its expected output, checked like a doctest's, unless there are none. A last line
  ``[exit status N]`` expects that status instead. A plain ``kquant ...`` (no shell syntax)
  runs as ``kquant``'s own entry point, in this process: the same code and output without
  a second of Python start-up each;
- ```bash blocks are shown, not run: the installs and the README's two commands (CI runs
  command 2 itself: it is `.ci/run`);
- ``<!-- skip: next -->`` before a python or console block leaves it out (starting napari's
  window, say); ``<!-- invisible-code-block: python -->`` runs code the reader does not see.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings

from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_EXIT = "[exit status "
_SHELL = re.compile(r"[*?|;&<>$`(){}\\\n~]")  # what only bash can run


def _commands(source: str) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    pairs: list[list[str]] = []
    for line in source.splitlines():
        if line.startswith("$ "):
            pairs.append([line[2:], ""])
        elif pairs and pairs[-1][0].endswith("\\") and not pairs[-1][1]:
            pairs[-1][0] += "\n" + line
        elif pairs:
            pairs[-1][1] += line + "\n"
        elif line.strip():
            raise ValueError(f"a console block starts with '$ ': {line!r}")
    return [(command, expected) for command, expected in pairs]


def run_console(example) -> str | None:
    folder = example.namespace["__folder__"]
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for command, expected in _commands(example.parsed):
        status = 0
        lines = expected.rstrip("\n").splitlines()
        if lines and lines[-1].startswith(_EXIT):
            status = int(lines[-1][len(_EXIT) : -1])
            expected = "\n".join(lines[:-1]) + ("\n" if len(lines) > 1 else "")
        if command.startswith("kquant") and not _SHELL.search(command):
            returncode, output = _kquant(shlex.split(command)[1:])
        else:
            done = subprocess.run(
                ["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip
            returncode, output = done.returncode, done.stdout + done.stderr
        if returncode != status:
            return f"$ {command}\nexited {returncode}, not {status}:\n{output}"
        checker = doctest.OutputChecker()
        if expected.strip() and not checker.check_output(expected, output, FLAGS):
            return f"$ {command}\nexpected:\n{expected}\ngot:\n{output}"
    return None


def _kquant(argv) -> tuple[int, str]:
    """``kquant ARGV`` through its entry point (`napari_kquant.cli._main.main`), here."""
    from napari_kquant.cli._main import main

    out = io.StringIO()
    streams = contextlib.redirect_stdout(out), contextlib.redirect_stderr(out)
    with streams[0], streams[1], warnings.catch_warnings():
        warnings.resetwarnings()  # a process's own filters, not the test suite's "error"
        try:
            status = main(argv)
        except SystemExit as e:  # argparse's --help and --version
            status = e.code if isinstance(e.code, int) else 0
    return status, out.getvalue()


def _setup(namespace) -> None:
    namespace["__folder__"] = tempfile.mkdtemp(prefix="kquant-docs-")
    namespace["__cwd__"] = os.getcwd()
    os.chdir(namespace["__folder__"])


def _teardown(namespace) -> None:
    os.chdir(namespace["__cwd__"])
    shutil.rmtree(namespace["__folder__"], ignore_errors=True)


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(doctest_optionflags=FLAGS),
        CodeBlockParser(language="console", evaluator=run_console),
        SkipParser(),
    ],
    patterns=["README.md", "docs/*.md"],
    setup=_setup,
    teardown=_teardown,
).pytest()
