"""Nothing lost, nothing escapes: atomic outputs, safe checkpoints, one validation path, output
folders checked before work, resumable training runs and sweep stores, one-line CLI errors."""

import json
import os
import pathlib
import threading
import warnings

import numpy as np
import pytest
import xarray as xr

from synapse_dyn import experiments, io
from synapse_dyn.analysis import sweeps
from synapse_dyn.cli import main

TRAIN = {
    "kind": "train",
    "name": "tiny",
    "substrate": "resistor",
    "rule": "ep",
    "task": "regression",
    "n_nodes": 8,
    "n_train": 16,
    "n_test": 8,
    "batch_size": 4,
    "epochs": 6,
    "learning_rate": 0.05,
}


def _write_toml(path: pathlib.Path, table: dict) -> pathlib.Path:
    import tomli_w

    path.write_text(tomli_w.dumps(table))
    return path


def _data(ds: xr.Dataset) -> dict:
    return {name: ds[name].values for name in [*ds.data_vars, *ds.coords]}


def assert_same_data(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(_data(a)) == set(_data(b))
    for name, values in _data(a).items():
        np.testing.assert_array_equal(values, b[name].values, err_msg=name)


# --- files ----------------------------------------------------------------------------------


def test_a_failed_write_keeps_the_previous_output_and_truncation_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "d.nc"
    good = xr.Dataset({"x": ("i", np.arange(3.0))})
    io.write_dataset(good, path)
    real = xr.Dataset.to_netcdf

    def exploding(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise OSError("disk full")  # fails after writing: the temporary must not survive

    monkeypatch.setattr(xr.Dataset, "to_netcdf", exploding)
    with pytest.raises(OSError, match="disk full"):
        io.write_dataset(xr.Dataset({"x": ("i", np.ones(5))}), path)
    monkeypatch.undo()
    assert_same_data(io.open_dataset(path), good)
    assert os.listdir(tmp_path) == ["d.nc"]  # no temporary left behind
    for size in (0, 40):  # what a kill during a direct write left behind in older versions
        truncated = tmp_path / f"t{size}.nc"
        truncated.write_bytes(path.read_bytes()[:size])
        with pytest.raises(ValueError, match=rf"\({size} bytes\) is not a complete dataset"):
            io.open_dataset(truncated)


def test_checkpoints_hold_arrays_only_and_a_crafted_file_cannot_run_code(tmp_path):
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    state = ((np.arange(3.0), [np.eye(2)]), {"w": np.float64(2.5)})
    io.save_state(tmp_path / "c.npz", state, 7.0, "config-a", {"records": np.ones((2, 5))})
    saved = io.read_checkpoint(tmp_path / "c.npz", "config-a")
    assert (
        saved.t == 7.0 and isinstance(saved.state[0], tuple) and isinstance(saved.state[0][1], list)
    )
    np.testing.assert_array_equal(saved.state[0][1][0], np.eye(2))
    with pytest.raises(ValueError, match="written by a different configuration"):
        io.read_checkpoint(tmp_path / "c.npz", "config-b")
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(Payload()))
    np.savez(
        tmp_path / "object.npz",
        header=np.array(json.dumps({"format": io.CHECKPOINT_FORMAT})),
        a0=np.array([Payload()], dtype=object),
    )
    for crafted in ("pickle.npz", "object.npz"):
        with pytest.raises(ValueError, match="is not a readable synapse-dyn checkpoint"):
            io.load_state(tmp_path / crafted)
    assert not marker.exists()
    with pytest.raises(TypeError, match="arrays, tuples, lists and dicts only"):
        io.save_state(tmp_path / "bad.npz", {"f": print}, 0.0)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tau_kernel", 1e300, r"tau_kernel must be a number in \(0, 1e\+06\], got 1e\+300"),
        ("amplitude_stop", 0.0, r"amplitude_stop must be a number in \(0, 1e\+06\], got 0.0"),
        ("tau_fast", float("nan"), r"tau_fast must be a number in \(0, 1e\+06\], got nan"),
        ("n_amplitudes", 2.5, r"n_amplitudes must be an integer in \[16, 100000\], got 2.5"),
        ("name", "../x", r"name must be a plain folder name .* got '../x'"),
    ],
)
def test_every_entry_point_validates_the_same_keys_the_same_way(tmp_path, key, value, message):
    """The Python API, an experiment file and a sweep of that key give the same message."""
    with pytest.raises((ValueError, TypeError), match=message):
        experiments.SynapseExperiment(**{key: value})
    with pytest.raises((ValueError, TypeError), match=message):
        experiments.from_table({"kind": "synapse", key: value})
    if key == "tau_kernel":  # swept: the same message for the offending point
        experiment = sweeps.SynapseResponse(experiments.SynapseExperiment(n_amplitudes=16))
        with pytest.raises(ValueError, match=r"sweep point 1 of 2 .* is invalid: " + message):
            sweeps.run(experiment, sweeps.Points(**{key: [1.0, value]}), progress=False)
    with pytest.raises(ValueError, match=r"learning_rate must be a number in \(0, 1e\+08\]"):
        experiments.from_table({**TRAIN, "learning_rate": float("inf")})


def test_the_cli_refuses_bad_outputs_before_any_work(tmp_path, capsys):
    good = _write_toml(tmp_path / "good.toml", {"kind": "synapse", "n_amplitudes": 16})
    sweep = _write_toml(
        tmp_path / "sweep.toml", {"kind": "synapse", "sweep": {"grid": {"tau_fast": [1.0]}}}
    )
    (tmp_path / "file").write_text("x")
    store = ["--out", str(tmp_path / "s.zarr")]
    cases = [
        (["run", str(good), "--out", str(tmp_path / "file" / "sub")], "is a file"),
        (["run", str(good), "--checkpoint-every", "2", "--out", str(tmp_path)], "training runs"),
        (["sweep", str(sweep), "--chunk", "0", *store], "--chunk must be >= 1"),
        (["sweep", str(sweep), "--workers", "0", "--cluster", "local", *store], "--workers must"),
        (["sweep", str(sweep), "--out", str(tmp_path / "file" / "s.zarr")], "is a file"),
    ]
    for name in ("../escape", "/abs", "a/b", "..", ""):
        bad = _write_toml(tmp_path / "named.toml", {"kind": "synapse", "name": name})
        cases.append((["run", str(bad), "--out", str(tmp_path / "out")], "plain folder name"))
    for argv, message in cases:
        assert main([*argv, "--quiet"]) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("synapse-dyn: error:") and err.count("\n") == 1 and message in err
    assert sorted(os.listdir(tmp_path)) == ["file", "good.toml", "named.toml", "sweep.toml"]


def test_existing_outputs_are_refused_and_locked_outputs_too(tmp_path, capsys):
    from synapse_dyn.cli import _lock

    path = _write_toml(tmp_path / "quick.toml", {"kind": "synapse", "n_amplitudes": 16})
    out = ["--out", str(tmp_path / "runs"), "--quiet"]
    assert main(["run", str(path), *out]) == 0  # named after the file
    first = (tmp_path / "runs" / "quick" / "dataset.nc").read_bytes()
    assert 'name = "quick"' in (tmp_path / "runs" / "quick" / "experiment.toml").read_text()
    capsys.readouterr()
    assert main(["run", str(path), *out]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    with _lock(tmp_path / "runs", "quick"):  # another process writing this output
        assert main(["run", str(path), "--overwrite", *out]) == 1
    assert "another synapse-dyn process is writing" in capsys.readouterr().err
    assert main(["run", str(path), "--resume", *out]) == 0
    assert "is complete: nothing to resume" in capsys.readouterr().out
    assert (tmp_path / "runs" / "quick" / "dataset.nc").read_bytes() == first


# --- training runs: checkpoints, resume, divergence -----------------------------------------


def test_an_interrupted_training_run_resumes_bit_identically(tmp_path, monkeypatch, capsys):
    from synapse_dyn import training

    path = _write_toml(tmp_path / "tiny.toml", TRAIN)
    reference = experiments.parse(path.read_text()).run(progress=False)[0]
    real_metrics, calls = training.metrics, {"n": 0}

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == 5:  # initial metrics + 3 epochs, then Ctrl-C in epoch 4
            raise KeyboardInterrupt
        return real_metrics(*args)

    monkeypatch.setattr(training, "metrics", interrupted)
    argv = ["run", str(path), "--out", str(tmp_path), "--quiet", "--checkpoint-every", "1"]
    assert main(argv) == 130
    saved = io.read_checkpoint(tmp_path / "tiny" / "checkpoint.npz")
    assert saved.t == 3 and len(saved.extra["test_loss"]) == 4  # curves before the checkpoint
    monkeypatch.setattr(training, "metrics", real_metrics)
    assert main([*argv, "--resume"]) == 0
    assert_same_data(io.open_dataset(tmp_path / "tiny" / "dataset.nc"), reference)
    assert not (tmp_path / "tiny" / "checkpoint.npz").exists()
    other = _write_toml(tmp_path / "tiny.toml", {**TRAIN, "learning_rate": 0.1})
    capsys.readouterr()
    assert main(["run", str(other), "--out", str(tmp_path), "--resume", "--quiet"]) == 1
    assert "holds a run of another configuration" in capsys.readouterr().err


def test_a_diverging_training_run_keeps_its_curves_and_says_where(tmp_path, monkeypatch, capsys):
    from synapse_dyn import training

    real_metrics, calls = training.metrics, {"n": 0}

    def diverging(*args):  # the parameters blow up in epoch 3: its metrics are NaN
        calls["n"] += 1
        values = real_metrics(*args)
        return {**values, "test_loss": float("nan")} if calls["n"] == 4 else values

    monkeypatch.setattr(training, "metrics", diverging)
    path = _write_toml(tmp_path / "wild.toml", TRAIN)
    assert main(["run", str(path), "--out", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "diverged in epoch 3: test_loss became non-finite" in err
    assert "partial.nc" in err
    curves = io.open_dataset(tmp_path / "tiny" / "partial.nc")
    assert curves.sizes["epoch"] == 3 and np.all(np.isfinite(curves.test_loss.values))


# --- sweep stores ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_sweep():
    experiment = sweeps.SynapseResponse(experiments.SynapseExperiment(n_amplitudes=16), n_grid=2**9)
    points = sweeps.Grid(tau_fast=[0.5, 1.0], tau_slow=[9.0, 12.0, 20.0])
    return experiment, points, sweeps.run(experiment, points, chunk=2, progress=False)


def test_stores_open_with_plain_open_zarr_and_survive_every_stage_of_creation(
    small_sweep, tmp_path
):
    """A kill while a store is created leaves either no store (a temporary that resume
    ignores) or a complete empty one; a store left by an older version's interrupted creation
    (no fingerprint) is started again. Every case resumes to the uninterrupted result."""
    from synapse_dyn.analysis.sweeps import store as store_module

    experiment, points, expected = small_sweep
    prepared = experiment.prepare(points.points())
    fingerprint = store_module._fingerprint(prepared, points, points.points(), 2)
    path = tmp_path / "s.zarr"
    # stage 1: killed while writing the temporary store (partly written), stage 2: before the
    # rename; both leave only a hidden temporary
    store_module._initialise(
        tmp_path / ".s.zarr.dead.partial", prepared, points, points.points(), 2, fingerprint
    )
    ds = sweeps.run(experiment, points, chunk=2, store=path, resume=True, progress=False)
    assert_same_data(ds, expected)
    # stage 3: renamed, no chunk computed yet; stage 4: an older version's half store
    for stage in ("empty", "legacy"):
        store_module.shutil.rmtree(path)
        store_module.create(path, prepared, points, points.points(), 2, fingerprint)
        if stage == "legacy":  # killed before its attributes were written
            import zarr

            del zarr.open_group(path, mode="r+").attrs["sweep_fingerprint"]
        ds = sweeps.run(experiment, points, chunk=2, store=path, resume=True, progress=False)
        assert_same_data(ds, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(path)
    assert {"tau_fast", "tau_slow", "amplitude"} <= set(plain.coords)
    np.testing.assert_array_equal(plain.tau_slow.values, np.tile([9.0, 12.0, 20.0], 2))


def test_concurrent_creators_of_one_store_agree(small_sweep, tmp_path):
    from synapse_dyn.analysis.sweeps import store as store_module

    experiment, points, _ = small_sweep
    prepared = experiment.prepare(points.points())
    fingerprint = store_module._fingerprint(prepared, points, points.points(), 2)
    path, errors = tmp_path / "s.zarr", []

    def create():
        try:
            store_module.create(path, prepared, points, points.points(), 2, fingerprint)
        except Exception as error:  # noqa: BLE001 - any failure is the test's failure
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sweeps.chunk_runs(path).tolist() == [0, 0, 0]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_zarr_notice_stays_silent_while_any_thread_writes(recwarn):
    """Four threads inside ``io.consolidating``; the first leaves while the others still
    write, and their zarr notices stay silent (with ``warnings.catch_warnings`` the first to
    leave restored the filters of before: the notice leaked in the suite's concurrent store
    test). After the last leaves, the notice shows again."""
    inside, first_left = threading.Barrier(4), threading.Event()

    def write(k):
        with io.consolidating():
            inside.wait()
            if k == 0:
                return
            first_left.wait()
            warnings.warn(f"{io.CONSOLIDATED_NOTICE} (thread {k})", UserWarning, stacklevel=1)

    def leave_first():
        write(0)
        first_left.set()

    threads = [threading.Thread(target=leave_first)] + [
        threading.Thread(target=write, args=(k,)) for k in (1, 2, 3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not [w for w in recwarn if io.CONSOLIDATED_NOTICE in str(w.message)]
    warnings.warn(io.CONSOLIDATED_NOTICE, UserWarning, stacklevel=1)
    assert [w for w in recwarn if io.CONSOLIDATED_NOTICE in str(w.message)]


def test_a_started_local_cluster_uses_tls_when_asked():
    with sweeps.dask_client(
        cluster="local", workers=1, options={"dashboard_address": ":0"}, tls=True
    ) as client:
        assert client.scheduler.address.startswith("tls://")
        assert client.security.require_encryption
        assert client.submit(lambda x: x + 1, 1).result() == 2


# --- numerical faults -----------------------------------------------------------------------


def test_inputs_that_could_only_fail_late_fail_at_once():
    """Each would fail (or hang, or allocate gigabytes) only after many solver steps."""
    from synapse_dyn import protocols as P
    from synapse_dyn.simulate import simulate
    from synapse_dyn.synapses import DeadZone, EColiCascade, Synapse

    synapse, sawtooth = Synapse(EColiCascade(0.05), DeadZone(1.0), 0.1), P.Sawtooth(1.0, 9.0)
    cases = [
        ({"t1": 1e9, "max_steps": 1000}, r"spans 1e\+08 protocol periods, more than max_steps"),
        ({"rtol": float("nan")}, "rtol must be a finite number, got nan"),
        ({"atol": float("nan")}, "atol must be a finite number, got nan"),
        ({"saveat": [1.0, float("nan")]}, "saveat must be finite"),
        ({"protocol": sawtooth * float("nan")}, "protocol.factor must be finite"),
        ({"protocol": P.Sawtooth(1.0, 9.0, -1e308, 1e308)}, "protocol.free must be finite with"),
        ({"synapse": Synapse(EColiCascade(0.05), DeadZone(1.0), 1e300)}, "learning_rate must be"),
        ({"checkpoint": "x"}, "checkpoint= saves network-level runs"),
    ]
    for change, message in cases:
        arguments = {"synapse": synapse, "protocol": sawtooth, "t1": 20.0, **change}
        with pytest.raises(ValueError, match=message):
            simulate(arguments.pop("synapse"), arguments.pop("protocol"), **arguments)


def test_a_sweep_needing_terabytes_fails_with_an_estimate_before_allocating(small_sweep):
    experiment, _, _ = small_sweep
    huge = sweeps.Grid(
        tau_fast=np.linspace(0.5, 2.0, 10_000),
        tau_slow=np.linspace(5.0, 30.0, 10_000),
        threshold=np.linspace(1.0, 20.0, 1_000),
    )
    with pytest.raises(
        ValueError, match=r"the sweep's 1e\+11 points needs about [\d.]+ TB of memory"
    ):
        sweeps.run(experiment, huge, progress=False)


def test_experiment_tables_are_written_back_by_a_toml_library():
    """A crafted value stays one value: the written table parses back to the same experiment."""
    crafted = experiments.TrainExperiment(name="a'b=c [x]", mnist_path='m.npz"\nepochs = 1\n#')
    text = experiments.to_toml(crafted)
    assert experiments.parse(text) == crafted
    assert text.count("\nepochs = ") == 1
