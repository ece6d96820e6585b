"""The command's interface: --version, python -m, help that lists what it can run, and a
pointer to the right command."""

import pathlib
import subprocess
import sys

import pytest

import synapse_dyn
from synapse_dyn import experiments
from synapse_dyn.analysis import figures
from synapse_dyn.cli import main

ROOT = pathlib.Path(__file__).parents[1]


def test_python_m_synapse_dyn_prints_the_version():
    out = subprocess.run(
        [sys.executable, "-m", "synapse_dyn", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == f"synapse-dyn {synapse_dyn.__version__}"


def _help(capsys, *args) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*args, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_help_lists_figures_and_kinds_without_markup(capsys):
    assert "``" not in _help(capsys)
    text = " ".join(_help(capsys, "figure").split())  # argparse wraps lines
    assert all(name in text for name in figures.names())
    text = " ".join(_help(capsys, "keys").split())
    assert all(kind in text for kind in experiments.KINDS)


def test_run_points_a_sweep_file_to_the_sweep_command(capsys):
    path = ROOT / "examples" / "sweep_ramps.toml"
    assert main(["run", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"synapse-dyn sweep {path}" in err and err.count("\n") == 1


def test_a_notebook_without_ipywidgets_gets_a_plain_bar_and_no_warning():
    """In a Jupyter kernel without ipywidgets, tqdm.auto warns and falls back to the text bar;
    the package's bars take the fallback silently."""
    script = """
import sys, types, warnings
class ZMQInteractiveShell:
    config = {}
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")  # a Jupyter kernel
sys.modules["IPython"] = types.SimpleNamespace(get_ipython=ZMQInteractiveShell)
sys.modules["ipywidgets"] = None  # not installed
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from MODULE import tqdm
import tqdm.notebook as widget
assert not issubclass(tqdm, widget.tqdm_notebook), tqdm  # the text bar
assert not caught, [str(w.message) for w in caught]
"""
    bare = subprocess.run(
        [sys.executable, "-c", script.replace("MODULE", "tqdm.auto")], capture_output=True
    )
    assert b"IProgress not found" in bare.stderr  # what tqdm.auto alone does
    out = subprocess.run(
        [sys.executable, "-c", script.replace("MODULE", "synapse_dyn._progress")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
