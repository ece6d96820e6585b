"""The package's shape: every source folder is installed, and imports point one way, from the
application (experiments, figures, CLI) through analysis to the core (networks, synapses,
rules, protocols, simulate), never back."""

import ast
import pathlib
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = {"synapse_dyn": "synapse_dyn", "protocols": "synapse_dyn.protocols"}
FOLDERS["analysis"] = "synapse_dyn.analysis"
APPLICATION = (
    "synapse_dyn.experiments",
    "synapse_dyn.cli",
    "synapse_dyn.__main__",
    "synapse_dyn.analysis.figures",
)


def _modules():
    """(module name, path) of every source file, named as installed."""
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            yield ".".join((package, *parts)), path


def _layer(module: str) -> int:
    """0 core, 1 analysis, 2 application."""
    if module.startswith(APPLICATION):
        return 2
    return 1 if module.startswith("synapse_dyn.analysis") else 0


def _imports(module: str, path: pathlib.Path):
    """Modules of the project imported by a file (relative imports resolved), outside
    ``if typing.TYPE_CHECKING`` blocks."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        yield from (name for name in names if name.startswith("synapse_dyn"))


def test_every_source_folder_is_an_installed_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {module for module, path in _modules() if path.name == "__init__.py"}
    data = set(config["package-data"]) - packages  # folders of data files, e.g. tasks/data
    assert packages | data == set(config["packages"])


@pytest.mark.parametrize("module, path", list(_modules()), ids=lambda value: str(value))
def test_imports_point_from_application_to_core(module, path):
    upward = [name for name in _imports(module, path) if _layer(name) > _layer(module)]
    assert not upward, f"{module} (layer {_layer(module)}) imports {upward}"
