"""The package's layout: layers that import only downwards, no import cycle between any
two modules (imports inside functions included), and modules and folders of a size a
reader can take in. The layers are declared once, in pyproject.toml's import-linter
contracts; `lint-imports` checks them in scripts/test.sh and this test checks them too."""

import pathlib
import tomllib

import grimp
import pytest

import napari_kquant

PACKAGE = pathlib.Path(napari_kquant.__file__).parent
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"
MAX_LINES = 600
MAX_MODULES = 12


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("napari_kquant", exclude_type_checking_imports=True)


def _layers():
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (contract,) = (c for c in config["contracts"] if c["type"] == "layers")
    return [f"napari_kquant.{layer}" for layer in contract["layers"]]


def _cycle(graph):
    """One import cycle between modules, as a list of names, or None."""
    modules = sorted(graph.modules)
    state = dict.fromkeys(modules, 0)  # 0 new, 1 on the path, 2 done
    path = []

    def visit(module):
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state[imported] == 1:
                return [*path[path.index(imported) :], imported]
            if state[imported] == 0:
                found = visit(imported)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return None

    for module in modules:
        if state[module] == 0:
            found = visit(module)
            if found:
                return found
    return None


def test_no_module_imports_a_module_that_imports_it_back(graph):
    assert _cycle(graph) is None


def test_a_cycle_is_found_when_there_is_one():
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.d")
    assert _cycle(graph) is None
    graph.add_import(importer="a.d", imported="a.b")
    assert _cycle(graph) == ["a.b", "a.c", "a.d", "a.b"]


def test_layers_import_only_the_layers_below_them(graph):
    layers = _layers()
    assert len(layers) == 8
    for i, upper in enumerate(layers):
        for lower in layers[i + 1 :]:
            chain = graph.find_shortest_chain(importer=lower, imported=upper, as_packages=True)
            assert chain is None, f"{lower} imports {upper}: {' -> '.join(chain)}"


def test_every_module_is_in_a_layer():
    layers = {name.split(".")[1] for name in _layers()}
    for path in PACKAGE.iterdir():
        if path.name in ("__init__.py", "__main__.py", "_version.py", "napari.yaml"):
            continue
        if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
            assert path.stem in layers, f"{path.name} is in no layer of pyproject.toml"


def test_no_napari_or_qt_below_the_viewer(graph):
    below = _layers()[2:]  # under cli and viewer
    for layer in below:
        for module in graph.find_children(layer) | {layer}:
            imported = graph.find_modules_directly_imported_by(module)
            outside = {m.split(".")[0] for m in imported if not m.startswith("napari_kquant")}
            assert not outside & {"napari", "qtpy", "superqt", "magicgui", "matplotlib"}, module


def test_modules_and_folders_stay_small():
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)}: {lines} lines"
    for folder in [PACKAGE, *(p for p in PACKAGE.iterdir() if p.is_dir())]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_MODULES, f"{folder.name}: {len(modules)} modules"
