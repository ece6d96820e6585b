"""Every dataset the project writes: one provenance (versions, time, typed configuration,
source revision, history), recorded even by an installed copy of the package, and CF
conventions (checked with cf-xarray; every unit parsed by pint) on each dataset the command
writes: a run, a training run, every figure and a sweep store."""

import datetime
import json
import pathlib
import shutil
import subprocess
import sys
import tomllib

import cf_xarray  # noqa: F401  (the .cf accessor)
import jax
import numpy as np
import pint
import pytest
import xarray as xr
from cf_xarray.units import units as udunits

import synapse_dyn
from synapse_dyn.analysis import figures
from synapse_dyn.cli import main
from synapse_dyn.io import provenance, source_revision
from synapse_dyn.units import DEFINITIONS, cf_units

ROOT = pathlib.Path(__file__).parents[1]


def _head(root) -> str | None:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def test_provenance_keeps_numeric_types_versions_time_and_history():
    config = {"epochs": 3, "beta": 0.5, "tau_slow": 9999.0, "one": 1.0, "hidden": [32, 16]}
    attrs = provenance(config)
    loaded = json.loads(attrs["config"])
    assert loaded == config
    assert [type(loaded[k]) for k in ("epochs", "one")] == [int, float]  # 1.0 stays a float
    assert attrs["synapse_dyn_version"] == synapse_dyn.__version__ != "0+unknown"
    assert attrs["jax_version"] == jax.__version__ and attrs["Conventions"].startswith("CF-")
    created = datetime.datetime.fromisoformat(attrs["created"])
    assert abs(datetime.datetime.now(datetime.UTC) - created).total_seconds() < 60
    assert attrs["history"].startswith(attrs["created"] + ": ")
    assert f"(synapse-dyn {synapse_dyn.__version__})" in attrs["history"]
    appended = provenance(config, history="2020-01-01T00:00:00+00:00: an earlier program")
    assert appended["history"].splitlines()[0].endswith("an earlier program")
    assert len(appended["history"].splitlines()) == 2
    head = _head(ROOT)
    if head is not None:  # tests run from a checkout (editable or installed from it)
        assert source_revision().startswith(head) and attrs["git_commit"] == source_revision()


def test_an_installed_copy_records_the_commit_it_was_built_from(tmp_path):
    """``pip install .`` builds from a checkout and installs outside it: setuptools-scm writes
    the commit into the package at build time and ``source_revision`` reads it there."""
    if _head(ROOT) is None:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shutil.copy(ROOT / "pyproject.toml", clone)  # this build configuration, committed
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.org"]
    subprocess.run(
        ["git", *identity, "commit", "-q", "--allow-empty", "-am", "build"], cwd=clone, check=True
    )
    subprocess.run(
        [sys.executable, "-m", "setuptools_scm", "--root", str(clone), "-c"]
        + [str(clone / "pyproject.toml"), "--force-write-version-files"],
        check=True,
        capture_output=True,
    )
    site = tmp_path / "site-packages"  # this package with the clone's build-time file,
    ignore = shutil.ignore_patterns("__pycache__", "_version.py")  # outside any git work tree
    shutil.copytree(ROOT / "synapse_dyn", site / "synapse_dyn", ignore=ignore)
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, folder in build["package-dir"].items():  # protocols/, analysis/ as the build
        shutil.copytree(ROOT / folder, site / package.replace(".", "/"), ignore=ignore)
    shutil.copy(clone / "synapse_dyn" / "_version.py", site / "synapse_dyn")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import synapse_dyn.io as io; print(io.__file__, io.source_revision())",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    where, revision = out.stdout.split()
    assert where.startswith(str(site))
    assert revision == _head(clone)


def _model_registry() -> pint.UnitRegistry:
    registry = pint.UnitRegistry()
    for line in DEFINITIONS:
        registry.define(line)
    return registry


MODEL = _model_registry()
PROVENANCE = ("synapse_dyn_version", "jax_version", "git_commit", "created", "history")


def check_conventions(ds: xr.Dataset) -> None:
    """CF attributes, provenance and parseable units on every variable of ``ds``."""
    assert ds.attrs["Conventions"] == "CF-1.11"
    assert all(ds.attrs[key] for key in PROVENANCE), ds.attrs
    assert isinstance(json.loads(ds.attrs["config"]), dict)
    assert ds.cf.keys() is not None  # cf-xarray parses the CF attributes of every variable
    for name, variable in {**ds.coords, **ds.data_vars}.items():
        attrs = variable.attrs
        assert attrs["long_name"], name
        unit = udunits.Unit(attrs["units"])  # a UDUNITS string (raises if not)
        if "model_units" in attrs:  # a pure number in the project's reference units
            assert attrs["units"] == "1" and unit.dimensionless, name
            assert not MODEL.Unit(attrs["model_units"]).dimensionless, name
        if name in ds.coords and variable.dtype.kind == "f":
            assert not np.isnan(variable.values).any(), f"NaN label in coordinate {name!r}"
    for value in ds.attrs.values():  # netCDF-safe attributes: strings, numbers, numeric arrays
        assert isinstance(value, str | int | float | np.number | np.ndarray), value
        assert not isinstance(value, bool | np.bool_)


def test_unit_spellings_become_cf_units():
    assert cf_units("bit") == {"units": "bit"} and cf_units("1") == {"units": "1"}
    assert cf_units("current x time") == {
        "units": "1",
        "model_units": "current_unit * time_unit",
    }
    assert cf_units("1 / time^2")["model_units"] == "1 / time_unit**2"
    assert cf_units("kT / time")["model_units"] == "kT / time_unit"  # not kilotesla
    assert cf_units("energy units of the substrate")["model_units"] == "energy_unit"
    per_time = MODEL.Quantity(3.0, cf_units("kT / time")["model_units"])
    energy = per_time * MODEL.Quantity(2.0, cf_units("time")["model_units"])
    assert energy.to("kT").magnitude == 6.0  # the reference units compose dimensionally


def test_run_quick_of_every_kind_follows_the_conventions(tmp_path):
    """``run --quick`` of the default (kind synapse) and of a training example (kind train)."""
    from synapse_dyn import experiments

    example = ROOT / "examples" / "resistor_cpl.toml"
    kinds = set()
    for args in ([], [str(example)]):
        out = tmp_path / str(len(kinds))
        assert main(["run", *args, "--quick", "--quiet", "--out", str(out)]) == 0
        [path] = out.glob("*/dataset.nc")
        with xr.open_dataset(path) as ds:
            check_conventions(ds)
            config = json.loads(ds.attrs["config"])
            assert ds.attrs["title"] and config["name"] == path.parent.name
            kinds.add("train" if "epochs" in config else "synapse")
            assert config.get("epochs", 2) <= 2 and config.get("n_amplitudes", 100) <= 100
    assert kinds == set(experiments.KINDS)


LONG = {"energy_accuracy"}  # quick figures that take a minute or so


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            marks=[pytest.mark.xdist_group(f"figure {n}")]
            + ([pytest.mark.long] if n in LONG else []),
        )
        for n in figures.names()
    ],
)
def test_every_figure_follows_the_conventions(name, quick_figure):
    ds = quick_figure(name)
    check_conventions(ds)
    assert ds.attrs["title"]


def test_a_sweep_store_carries_provenance_and_units(tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(
        'kind = "synapse"\nname = "swept"\nn_amplitudes = 40\n[sweep.grid]\ntau_slow = [4.0, 9.0]\n'
    )
    store = tmp_path / "swept.zarr"
    assert main(["sweep", str(sweep), "--out", str(store), "--quiet"]) == 0
    with xr.open_zarr(store, consolidated=False) as ds:
        check_conventions(ds)
        assert "sweep_layout" in ds.attrs
