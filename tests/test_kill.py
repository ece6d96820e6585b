"""kill -9 at seeded random moments: ``synapse-dyn run`` (checkpointing every epoch) and
``synapse-dyn sweep`` are each killed 10 times (while starting, while creating their outputs,
while computing and writing) and resumed; after every kill what is on disk is readable and
equal to the uninterrupted run's results so far, and the last resume finishes bit-identical."""

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tomli_w

from synapse_dyn import experiments, io
from synapse_dyn.analysis import sweeps

pytestmark = pytest.mark.long

KILLS = 10
TRAIN = {
    "kind": "train",
    "name": "killed",
    "substrate": "resistor",
    "task": "regression",
    "n_nodes": 24,
    "n_train": 400,
    "n_test": 50,
    "batch_size": 4,
    "epochs": 16,  # the kills while training take one or two epochs each
}


def _command(*argv) -> list[str]:
    return [sys.executable, "-m", "synapse_dyn.cli", *argv, "--quiet"]


def _cli(*argv) -> subprocess.Popen:
    """The command, to be killed. Its stderr is discarded, not piped: a pipe nobody reads
    fills up (XLA logs two lines per program it loads from the cache on some CPUs) and
    blocks the child mid-run (a resume hung for 13 minutes that way)."""
    return subprocess.Popen(_command(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _finish(*argv) -> None:
    """The command run to its end, which must succeed."""
    done = subprocess.run(_command(*argv), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def _kill_when(process, ready, rng, timeout=120.0) -> str:
    """SIGKILL ``process`` a random 0-50 ms after ``ready()`` turns true (or when it ends)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.05))
    finished = process.poll() is not None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return "finished" if finished else "killed"


def _after(seconds: float):
    """A function that is true ``seconds`` from now."""
    start = time.monotonic()
    return lambda: time.monotonic() - start > seconds


def _progress(read):
    """A function that is true once ``read()`` (None while unreadable) exceeds its value now."""
    start = read()
    return lambda: (value := read()) is not None and (start is None or value > start)


def test_killed_training_run_resumes_bit_identically(tmp_path):
    rng = random.Random(17)
    path = tmp_path / "killed.toml"
    path.write_text(tomli_w.dumps(TRAIN))
    reference = experiments.parse(path.read_text()).run(progress=False)[0]
    folder, checkpoint = (
        tmp_path / "runs" / "killed",
        tmp_path / "runs" / "killed" / "checkpoint.npz",
    )

    def epoch():
        try:
            return io.read_checkpoint(checkpoint).t
        except (FileNotFoundError, ValueError):
            return None

    outcomes = []
    for kill in range(KILLS):
        process = _cli(
            "run", str(path), "--out", str(tmp_path / "runs"), "--checkpoint-every", "1", "--resume"
        )
        if kill < 3:  # while starting: importing, checking and creating the output folder
            outcomes.append(_kill_when(process, _after(rng.uniform(0.0, 3.0)), rng))
        else:  # while training and writing checkpoints
            outcomes.append(_kill_when(process, _progress(epoch), rng))
        if checkpoint.exists():  # never damaged: readable, and the curves so far are right
            saved = io.read_checkpoint(checkpoint)
            done = int(saved.t)
            np.testing.assert_array_equal(
                saved.extra["test_loss"], reference.test_loss.values[: done + 1]
            )
        if (folder / "experiment.toml").exists():
            experiments.parse((folder / "experiment.toml").read_text())
    assert outcomes.count("killed") >= KILLS - 1, outcomes
    _finish("run", str(path), "--out", str(tmp_path / "runs"), "--resume")
    ds = io.open_dataset(folder / "dataset.nc")
    for name in reference.data_vars:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)
    assert not checkpoint.exists()


def test_killed_sweep_resumes_bit_identically(tmp_path):
    rng = random.Random(23)
    path = tmp_path / "sweep.toml"
    path.write_text(
        tomli_w.dumps(
            {
                "kind": "synapse",
                "name": "killed-sweep",
                "n_amplitudes": 100,
                "sweep": {
                    "chunk": 2,
                    "points": {
                        # 120 chunks: the kills while computing take about two each
                        "tau_fast": np.linspace(0.5, 3.0, 240).tolist(),
                        "tau_slow": np.linspace(5.0, 40.0, 240).tolist(),
                    },
                },
            }
        )
    )
    experiment, points, chunk = experiments.parse_sweep(path.read_text())
    reference = sweeps.run(experiment, points, chunk=chunk, progress=False)
    store = tmp_path / "s.zarr"

    def finished():
        try:
            return int((sweeps.chunk_runs(store) > 0).sum())
        except (FileNotFoundError, ValueError):
            return None

    outcomes = []
    for kill in range(KILLS):
        process = _cli("sweep", str(path), "--out", str(store), "--resume")
        if kill < 2:  # while starting
            outcomes.append(_kill_when(process, _after(rng.uniform(0.0, 3.0)), rng))
        elif kill < 4 and not store.exists():  # while creating the store
            created = lambda: store.exists() or any(tmp_path.glob(".s.zarr.*.partial"))  # noqa: E731
            outcomes.append(_kill_when(process, created, rng))
        else:  # while computing chunks and writing them
            outcomes.append(_kill_when(process, _progress(finished), rng))
        if store.exists():  # finished chunks are intact and equal to the reference
            done = np.repeat(sweeps.chunk_runs(store) > 0, chunk)[: points.shape[0]]
            partial = sweeps.open_sweep(store, partial=True)
            np.testing.assert_array_equal(partial.dw.values[done], reference.dw.values[done])
    assert outcomes.count("killed") >= KILLS - 1, outcomes
    _finish("sweep", str(path), "--out", str(store), "--resume")
    ds = sweeps.open_sweep(store)
    for name in reference.data_vars:
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)
