"""The synapse-dyn command: default run, figures, experiment files and one-line errors."""

import pathlib
import subprocess
import sys

import pytest
import xarray as xr

from synapse_dyn.cli import main


def test_default_run_writes_dataset_figure_and_summary(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "learning range" in out
    folder = tmp_path / "tcl-synapse"
    assert (folder / "figure.png").stat().st_size > 0 and (folder / "figure.pdf").exists()
    with xr.open_dataset(folder / "dataset.nc") as ds:
        assert ds.attrs["software"] == "synapse-dyn" and '"tau_fast": 1.0' in ds.attrs["config"]
        assert 8.0 < float(ds.learning_range) <= 9.0  # bound tau_slow/tau_fast = 9
        assert ds.dw.attrs["units"] and ds.amplitude.attrs["long_name"]


def test_experiment_file_and_unknown_keys(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text(
        'kind = "synapse"\nname = "slow"\ntau_slow = 19\nthreshold = '
        "5.2631578947\nn_amplitudes = 200\n"
    )
    assert main(["run", str(good), "--out", str(tmp_path), "--quiet"]) == 0
    with xr.open_dataset(tmp_path / "slow" / "dataset.nc") as ds:
        assert 15 < float(ds.learning_range) <= 19.05
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "synapse"\ntau_fats = 1.0\n')
    assert main(["run", str(bad), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown key(s) ['tau_fats']" in err and "tau_fast" in err and err.count("\n") == 1


def test_bad_values_fail_with_one_line_and_nonzero_status(tmp_path):
    bad = tmp_path / "negative.toml"
    bad.write_text('kind = "synapse"\ntau_fast = -1.0\n')
    result = subprocess.run(
        [sys.executable, "-m", "synapse_dyn.cli", "run", str(bad), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"synapse-dyn: error: {bad}: tau_fast must be a number in (0, 1e+06], got -1.0; "
        "pass a value in that range."
    ]


@pytest.mark.xdist_group("figure figS_timescale")
def test_figure_command_quick(tmp_path, quick_figure):
    ds = quick_figure("figS_timescale")
    assert {"tau_fast", "dw_over_amplitude"} <= set(ds.data_vars)
    assert pathlib.Path(ds.encoding["source"]).with_suffix(".png").exists()
    assert main(["figure", "nope", "--out", str(tmp_path)]) == 1


def test_every_example_experiment_parses_and_the_resistor_one_trains(tmp_path, capsys):
    import pathlib

    from synapse_dyn import experiments

    examples = sorted((pathlib.Path(__file__).parents[1] / "examples").glob("*.toml"))
    runs = [p for p in examples if "[sweep]" not in p.read_text()]
    assert {p.stem.split("_")[0] for p in runs} >= {"resistor", "diode", "hopfield", "elastic"}
    for path in runs:
        assert isinstance(
            experiments.parse(path.read_text(), str(path)), experiments.TrainExperiment
        )
    resistor = next(p for p in runs if p.stem.startswith("resistor"))
    assert main(["run", str(resistor), "--out", str(tmp_path), "--quiet"]) == 0
    assert "test loss" in capsys.readouterr().out
    with xr.open_dataset(next(tmp_path.glob("*/dataset.nc"))) as ds:
        assert float(ds.test_loss[-1]) < 0.01 * float(ds.test_loss[0])
