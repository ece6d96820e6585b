"""Parameter sweeps: grids, points and draws; validation before work; the in-process and Dask
executors give identical datasets; a killed worker or a killed run loses nothing."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from distributed import Client, LocalCluster, WorkerPlugin

from synapse_dyn import experiments
from synapse_dyn import protocols as P
from synapse_dyn.analysis import response_curves, sweeps
from synapse_dyn.cli import main
from synapse_dyn.experiments import SynapseExperiment
from synapse_dyn.synapses import DeadZone, EColiKernel

SMALL = SynapseExperiment(amplitude_stop=100.0, n_amplitudes=40)


def _values(ds: xr.Dataset) -> dict:
    """Every array of a dataset (data and coordinates), for bitwise comparison."""
    return {name: ds[name].values for name in [*ds.data_vars, *ds.coords]}


def assert_same(a: xr.Dataset, b: xr.Dataset) -> None:
    assert a.sizes == b.sizes and set(_values(a)) == set(_values(b))
    for name, values in _values(a).items():
        np.testing.assert_array_equal(values, b[name].values, err_msg=name)
        assert values.dtype == b[name].dtype


@pytest.fixture(scope="module")
def experiment():
    return sweeps.SynapseResponse(SMALL, n_grid=2**10)


@pytest.fixture(scope="module")
def grid():
    return sweeps.Grid(tau_fast=[0.5, 1.0, 2.0], tau_slow=[5.0, 9.0, 15.0, 20.0, 30.0])


@pytest.fixture(scope="module")
def reference(experiment, grid):
    return sweeps.run(experiment, grid, chunk=2, progress=False)


@pytest.fixture(scope="module")
def client():
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        with Client(cluster) as client:
            yield client


def test_grid_dataset_has_the_axes_as_dims_and_matches_response_curves(reference, grid):
    ds = reference
    assert ds.dw.dims == ("tau_fast", "tau_slow", "amplitude")
    assert ds.period.dims == ("tau_fast", "tau_slow")
    np.testing.assert_array_equal(ds.tau_slow.values, grid.axes["tau_slow"])
    assert (
        ds.dw.attrs["model_units"] == "current_unit * time_unit"
        and ds.attrs["kernel_timescale"] == 0.05
    )
    assert ds.regime.attrs["flag_meanings"] == "no_update contrastive cancellation"
    point = ds.sel(tau_fast=2.0, tau_slow=15.0)
    direct = response_curves(
        EColiKernel(0.0, 20.0),
        DeadZone(SMALL.threshold),
        P.Sawtooth(2.0, 15.0, -0.5, 0.5),
        ds.amplitude.values,
        n_grid=2**10,
    )
    np.testing.assert_allclose(point.dw.values, direct.dw.values, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(point.regime.values, direct.regime.values)
    np.testing.assert_allclose(ds.period.values, np.add.outer(*grid.axes.values()))


def test_sweep_compiles_once(experiment):
    first = sweeps.run(experiment, sweeps.Points(tau_fast=[0.5, 0.7, 0.9]), chunk=2, progress=False)
    before = sweeps.execution._evaluate._cached._cache_size()
    second = sweeps.run(
        experiment, sweeps.Points(tau_fast=[1.5, 1.7, 1.9]), chunk=2, progress=False
    )
    # new values and a padded last chunk, but the same shapes: no new trace
    assert sweeps.execution._evaluate._cached._cache_size() == before
    assert not np.array_equal(first.dw.values, second.dw.values)


def test_default_chunks_fit_the_memory_budget(experiment, grid, reference, tmp_path):
    per_point = experiment.prepare(grid.points()).bytes_per_point()
    budget = 4 * per_point + 1  # room for 4 points: 15 points in 4 chunks
    ds = sweeps.run(experiment, grid, store=tmp_path / "s.zarr", memory=budget, progress=False)
    assert sweeps.chunk_runs(tmp_path / "s.zarr").size == 4
    np.testing.assert_allclose(ds.dw.values, reference.dw.values, rtol=1e-12, atol=1e-12)


def test_draws_are_seeded_and_stored_along_their_dim(experiment):
    draws = dict(tau_fast=sweeps.Multiples(0.1, 5, 20), tau_slow=sweeps.LogUniform(5.0, 30.0))
    a, b = (sweeps.Draws(6, seed=3, dim="protocol", **draws).points() for _ in range(2))
    c = sweeps.Draws(6, seed=4, **draws).points()
    np.testing.assert_array_equal(a["tau_slow"], b["tau_slow"])
    assert not np.array_equal(a["tau_slow"], c["tau_slow"])
    assert np.all((a["tau_slow"] >= 5.0) & (a["tau_slow"] < 30.0))
    np.testing.assert_allclose(a["tau_fast"] / 0.1, np.round(a["tau_fast"] / 0.1))
    ds = sweeps.run(
        experiment, sweeps.Draws(6, seed=3, dim="protocol", **draws), chunk=4, progress=False
    )
    assert ds.dw.dims == ("protocol", "amplitude") and "tau_slow" in ds.data_vars
    np.testing.assert_array_equal(ds.tau_slow.values, a["tau_slow"])


def test_invalid_points_are_rejected_before_any_work(experiment, tmp_path):
    store = tmp_path / "never.zarr"
    bad = sweeps.Grid(tau_fast=[1.0, 2.0, -0.5], tau_slow=[9.0, 12.0])
    with pytest.raises(
        ValueError,
        match=r"sweep point 4 of 6 \(tau_fast=-0.5, tau_slow=9.0\) is invalid: "
        r"tau_fast must be a number in \(0, 1e\+06\], got -0.5",
    ):
        sweeps.run(experiment, bad, store=store, progress=False)
    with pytest.raises(
        ValueError, match=r"unknown sweep parameter\(s\) \['tau_fats'\].*'tau_fast'"
    ):
        sweeps.run(experiment, sweeps.Grid(tau_fats=[1.0]), store=store, progress=False)
    with pytest.raises(ValueError, match="sweep axis 'tau_slow' has a non-finite value nan"):
        sweeps.Grid(tau_slow=[1.0, float("nan")])
    assert not store.exists()  # nothing was started


def test_sweep_file_errors_are_one_line(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('kind = "synapse"\n[sweep.grid]\ntau_slow = [9.0, -3.0]\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "s.zarr"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "sweep point 1 of 2 (tau_slow=-3.0) is invalid: tau_slow must be a number in" in err
    )
    path.write_text('kind = "synapse"\n[sweep]\nchunks = 3\n[sweep.grid]\ntau_slow = [9.0]\n')
    assert main(["sweep", str(path), "--out", str(tmp_path / "s.zarr")]) == 1
    assert (
        "[sweep] takes exactly one of grid, points, random and optionally chunk; "
        "got ['chunks', 'grid']" in capsys.readouterr().err
    )
    path.write_text(
        'kind = "synapse"\n[sweep.random]\nn = 4\nseed = 1\ntau_slow = {normal = [1, 2]}\n'
    )
    assert main(["sweep", str(path), "--out", str(tmp_path / "s.zarr")]) == 1
    assert "random axis 'tau_slow' must be one of" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists()


def test_sweep_file_grid_matches_python(experiment, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        'kind = "synapse"\nname = "g"\namplitude_stop = 100.0\nn_amplitudes = 40\n'
        "[sweep]\nchunk = 3\n[sweep.grid]\n"
        "tau_fast = {start = 0.5, stop = 2.0, num = 3, log = true}\ntau_slow = [9.0, 20.0]\n"
    )
    parsed, grid, chunk = experiments.parse_sweep(path.read_text())
    assert chunk == 3
    assert parsed.config_ == SynapseExperiment(name="g", amplitude_stop=100.0, n_amplitudes=40)
    np.testing.assert_allclose(grid.axes["tau_fast"], [0.5, 1.0, 2.0])
    assert main(["sweep", str(path), "--out", str(tmp_path / "g.nc"), "--quiet"]) == 0
    with xr.open_dataset(tmp_path / "g.nc") as ds:
        assert ds.dw.dims == ("tau_fast", "tau_slow", "amplitude") and "config" in ds.attrs


def test_dask_cluster_gives_the_same_dataset(experiment, grid, reference, client, tmp_path):
    ds = sweeps.run(
        experiment, grid, chunk=2, client=client, store=tmp_path / "dask.zarr", progress=False
    )
    assert_same(ds, reference)
    assert_same(sweeps.open_sweep(tmp_path / "dask.zarr"), reference.drop_attrs())
    assert np.all(sweeps.chunk_runs(tmp_path / "dask.zarr") == 1)


def test_killed_worker_loses_nothing(client, tmp_path):
    """A worker process dies (SIGKILL) while it runs chunk 3: Dask reruns that chunk on
    another worker and the store ends complete and identical to the in-process run."""
    marker = tmp_path / "killed"

    class KillOnChunk(WorkerPlugin):  # defined here so that it is pickled by value
        def transition(self, key, start, finish, **kwargs):
            if (
                finish == "executing"
                and str(key).startswith("sweep-chunk-3-")
                and not marker.exists()
            ):
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)

    experiment = sweeps.SynapseResponse(SMALL, n_grid=2**11)
    points = sweeps.Points(tau_fast=np.linspace(0.5, 2.0, 12), tau_slow=np.linspace(5.0, 30.0, 12))
    expected = sweeps.run(experiment, points, chunk=2, progress=False)
    pids = set(client.run(os.getpid).values())
    client.register_plugin(KillOnChunk(), name="kill-on-chunk")
    try:
        ds = sweeps.run(
            experiment, points, chunk=2, client=client, store=tmp_path / "s.zarr", progress=False
        )
    finally:
        client.unregister_worker_plugin("kill-on-chunk")
    assert int(marker.read_text()) in pids  # a worker process really died mid-chunk
    assert np.all(sweeps.chunk_runs(tmp_path / "s.zarr") == 1)
    assert_same(ds, expected)


def _flags(store) -> np.ndarray | None:
    try:
        return sweeps.chunk_runs(store)
    except Exception:  # the store is being created
        return None


def test_killed_run_resumes_without_recomputing_finished_chunks(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        'kind = "synapse"\nname = "resume"\nn_amplitudes = 100\n'
        "[sweep]\nchunk = 2\n[sweep.points]\n"
        f"tau_fast = {np.linspace(0.5, 3.0, 160).tolist()}\n"
        f"tau_slow = {np.linspace(5.0, 40.0, 160).tolist()}\n"
    )
    store = tmp_path / "s.zarr"
    command = [
        sys.executable,
        "-m",
        "synapse_dyn.cli",
        "sweep",
        str(path),
        "--out",
        str(store),
        "--quiet",
    ]
    # stderr discarded, not piped: an unread pipe fills with XLA's logs and blocks the child
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        flags = _flags(store) if store.exists() else None
        if flags is not None and (flags > 0).sum() >= 3:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = sweeps.chunk_runs(store)
    done = before > 0
    assert 3 <= done.sum() < done.size, "the run was not killed mid-sweep"
    with pytest.raises(ValueError, match=r"incomplete: \d+ of 80 chunks missing"):
        sweeps.open_sweep(store)
    partial = sweeps.open_sweep(store, partial=True).dw.values
    finished = np.repeat(done, 2)  # two points per chunk
    # finished chunks are complete; NaN only where chunks are unfinished (a chunk killed between
    # its region write and its flag may hold data, which resume recomputes)
    missing = np.isnan(partial).reshape(len(partial), -1).all(axis=1)
    assert not np.isnan(partial[finished]).any() and not (missing & finished).any()
    assert missing[~finished].mean() > 0.5

    assert main(["sweep", str(path), "--out", str(store), "--resume", "--quiet"]) == 0
    after = sweeps.chunk_runs(store)
    np.testing.assert_array_equal(after[done], 1)  # finished chunks were not computed again
    np.testing.assert_array_equal(after[~done], 2)  # the resumed run computed only the rest
    experiment, points, chunk = experiments.parse_sweep(path.read_text())
    uninterrupted = sweeps.run(experiment, points, chunk=chunk, progress=False)
    assert_same(sweeps.open_sweep(store), uninterrupted.drop_attrs())
    np.testing.assert_array_equal(partial[finished], uninterrupted.dw.values[finished])


def test_cluster_options_and_figure_on_a_scheduler(client, tmp_path, capsys):
    options = sweeps.cluster_options(
        ["cores=4", "memory=16GB", 'job_extra_directives=["--gres=gpu:1"]']
    )
    assert options == {"cores": 4, "memory": "16GB", "job_extra_directives": ["--gres=gpu:1"]}
    with pytest.raises(ValueError, match="must look like KEY=VALUE"):
        sweeps.cluster_options(["cores"])
    with sweeps.dask_client(
        cluster="local", workers=1, options={"dashboard_address": ":0"}
    ) as local:
        assert len(local.scheduler_info()["workers"]) == 1
    with pytest.raises(ValueError, match="cluster must be 'local' or 'slurm', got 'pbs'"):
        with sweeps.dask_client(cluster="pbs"):
            pass
    address = client.scheduler.address
    assert main(["figure", "fig4b", "--quick", "--scheduler", address, "--out", str(tmp_path)]) == 1
    assert "figure fig4b does not run on Dask" in capsys.readouterr().err
    args = ["figure", "fig5c", "--quick", "--quiet", "--scheduler", address, "--out", str(tmp_path)]
    assert main(args) == 0
    with xr.open_dataset(tmp_path / "fig5c.nc") as ds:
        assert ds.sizes["protocol"] == 40 and np.all(ds.contrastive_slope.notnull())


def test_fig6b_on_dask_matches_its_compiled_function(client):
    """Fig. 6B through the sweep machinery, in process and on 2 workers, gives exactly the
    numbers of its experiment's batch function, compiled as a sweep compiles it and called
    directly on the ladders, chunk by chunk. (Compiled on its own, ``fig6b._chunk`` rounds the
    last bits differently at the suite's fast-compile XLA flags, tests/conftest.py: another
    program, not another computation.)"""
    import equinox as eqx
    import jax.numpy as jnp

    from synapse_dyn.analysis.figures import fig6b

    ds = fig6b.compute(quick=True, progress=False, chunk=100)
    assert_same(fig6b.compute(quick=True, progress=False, chunk=100, client=client), ds)
    ladders = fig6b.random_ladders(4, seed=6)
    experiment = fig6b.LadderResponse(jnp.asarray(fig6b.amplitudes()), 2**13)
    batch = eqx.filter_jit(lambda experiment, points: experiment(points))
    parts = [
        batch(experiment, {k: jnp.asarray(v[start : start + 100]) for k, v in ladders.items()})
        for start in (0, 100)
    ]
    direct = {name: np.concatenate([np.asarray(part[name]) for part in parts]) for name in parts[0]}
    for name, values in direct.items():
        np.testing.assert_array_equal(ds[name].values, values, err_msg=name)
    offset = fig6b.offsets(fig6b.amplitudes() / fig6b.AMPLITUDE_MAX, direct["dw"])
    np.testing.assert_array_equal(ds.offset.values, offset)
