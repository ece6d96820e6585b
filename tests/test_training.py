"""End-to-end training: a resistor network learns a teacher's linear map (EP and CpL), a
Hopfield network learns Iris and handwritten digits; the learning-curve dataset is
self-describing; bad configurations are rejected."""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from synapse_dyn import experiments
from synapse_dyn.training import TrainConfig, train

REGRESSION = dict(
    substrate="resistor", task="regression", n_nodes=40, epochs=15, n_train=160, n_test=80
)


@pytest.mark.parametrize(
    "rule,extra",
    [("ep", dict(beta=0.5, learning_rate=10.0)), ("cpl", dict(eta=0.5, learning_rate=20.0))],
)
def test_resistor_regression_reaches_one_percent(rule, extra):
    curves = train(TrainConfig(rule=rule, **REGRESSION, **extra), progress=False)
    loss = curves["test_loss"].values
    assert loss[-1] < 0.01 * loss[0], loss
    assert "test_accuracy" not in curves  # regression: no accuracy
    assert np.all(curves["parameter_norm"].values > 0)


def test_hopfield_iris_and_curves_are_self_describing():
    config = TrainConfig(
        substrate="hopfield",
        task="iris",
        rule="ep",
        variant="centered",
        beta=0.5,
        hidden=[32],
        batch_size=4,
        free_sweeps=30,
        nudged_sweeps=10,
        learning_rate=0.1,
        lr_decay=0.97,
        epochs=50,
        seed=1,
    )
    curves = train(config, progress=False)
    assert curves["test_accuracy"].values[-1] >= 0.93
    assert curves["test_accuracy"].values[0] < 0.7
    assert list(curves["epoch"].values) == list(range(51))
    for name, variable in curves.variables.items():
        assert variable.attrs.get("units") and variable.attrs.get("long_name"), name
    assert json.loads(curves.attrs["config"]) == dataclasses.asdict(config)
    for value in curves.attrs.values():
        assert isinstance(value, str | int | float)


def test_hopfield_digits_centered_ep():
    config = TrainConfig(
        substrate="hopfield",
        task="digits",
        rule="ep",
        variant="centered",
        beta=0.5,
        hidden=[64],
        batch_size=16,
        free_sweeps=20,
        nudged_sweeps=8,
        learning_rate=0.1,
        lr_decay=0.95,
        epochs=10,
        test_fraction=0.2,
    )
    assert train(config, progress=False)["test_accuracy"].values[-1] >= 0.95


def test_config_fields_are_documented_and_bad_values_rejected(tmp_path):
    for field in dataclasses.fields(TrainConfig):
        assert field.metadata["doc"], field.name
    for bad, message in [
        (dict(substrate="graphene"), "substrate must be one of"),
        (dict(learning_rate=0.0), r"learning_rate must be a number in \(0, 1e\+08\], got 0.0"),
        (dict(learning_rate=float("inf")), r"learning_rate must be a number in \(0, 1e\+08\]"),
        (dict(epochs=0), r"epochs must be an integer in \[1, 1e\+06\], got 0"),
        (dict(lr_decay=1.5), r"lr_decay must be a number in \(0, 1\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rat'\].*valid keys: \["):
        experiments.parse('kind = "train"\nlearning_rat = 0.1\n')
    with pytest.raises(ValueError, match=r"eta must be a number in \(0, 1\], got 2.0"):
        train(TrainConfig(rule="cpl", eta=2.0, epochs=1), progress=False)
    with pytest.raises(ValueError, match=r"beta must be a number in \(0, 1000\], got -0.1"):
        train(TrainConfig(rule="ep", beta=-0.1, epochs=1), progress=False)
    with pytest.raises(ValueError, match="batch_size 500 exceeds"):
        train(TrainConfig(batch_size=500, epochs=1), progress=False)
    with pytest.raises(FileNotFoundError, match="does not download"):
        train(
            TrainConfig(substrate="hopfield", task="mnist", mnist_path=str(tmp_path / "none.npz")),
            progress=False,
        )
    with pytest.raises(ValueError, match="trains on iris, digits or mnist"):
        train(TrainConfig(substrate="hopfield", task="regression"), progress=False)


def test_example_files_map_onto_config():
    import tomllib

    files = sorted(pathlib.Path(__file__).parent.parent.glob("examples/*_*.toml"))
    names = {f.name for f in files}
    for substrate in ("resistor", "diode", "hopfield", "elastic"):
        assert any(n.startswith(substrate + "_") for n in names), substrate
    for path in files:
        if tomllib.loads(path.read_text()).get("kind") != "train":
            continue
        config = experiments.parse(path.read_text(), str(path))
        assert path.name.startswith(f"{config.substrate}_{config.rule}")


def test_persistent_states_carry_the_relaxation_across_epochs():
    """With learning rate 0 and one free sweep per phase, k epochs with persistent states
    leave each sample at k sweeps of block coordinate descent from zero."""
    import jax
    import jax.numpy as jnp

    from synapse_dyn import rules
    from synapse_dyn.networks import HopfieldNetwork
    from synapse_dyn.training import sgd_epoch

    one = HopfieldNetwork((4, 6, 3), free_sweeps=1, nudged_sweeps=1, gain=1.5)
    w = one.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (8, 4))
    y = jnp.eye(3)[jnp.arange(8) % 3]
    states = jax.tree.map(lambda s: jnp.stack([s] * 8), one.initial_state())
    for _ in range(3):
        w, states = sgd_epoch(one, rules.EP(0.5), w, x, y, None, jnp.asarray(0.0), 4, states)
    three = HopfieldNetwork((4, 6, 3), free_sweeps=3, nudged_sweeps=1, gain=1.5)
    expected = jax.vmap(lambda xi: three.equilibrium(w, xi))(x)
    single = jax.vmap(lambda xi: one.equilibrium(w, xi))(x)
    for got, want in zip(states, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-14)
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(expected, single, strict=True)) > 1e-3


def test_tcl_regression_reaches_the_coupled_learning_loss():
    """The resistor regression of examples/resistor_tcl.toml: TCL (sawtooth clamp with random
    sign, E. coli memory, dead zone) ends within 10% of coupled learning's test loss."""
    examples = pathlib.Path(__file__).parent.parent / "examples"
    losses = {
        name: train(
            experiments.parse((examples / f"resistor_{name}.toml").read_text()), progress=False
        )["test_loss"].values
        for name in ("tcl", "cpl")
    }
    assert losses["cpl"][-1] < 1e-3 * losses["cpl"][0]
    assert losses["tcl"][-1] <= 1.1 * losses["cpl"][-1], (losses["tcl"][-1], losses["cpl"][-1])


def test_schedule_from_task_presents_the_shuffled_training_split():
    from synapse_dyn.simulate import Schedule
    from synapse_dyn.tasks import linear_regression

    task = linear_regression(np.eye(2), 12, 4, seed=0)
    schedule = Schedule.from_task(task, batch_size=4, seed=3)
    order = np.random.default_rng(3).permutation(12)
    np.testing.assert_array_equal(schedule.inputs, task.x_train[order])
    np.testing.assert_array_equal(schedule.targets[schedule.rows(1)], task.y_train[order[4:8]])


def test_tcl_trains_the_elastic_allostery():
    """examples/elastic_tcl.toml at 12 epochs: the clamp-driven sawtooth lowers the allostery
    loss more than 100-fold."""
    examples = pathlib.Path(__file__).parent.parent / "examples"
    config = experiments.parse((examples / "elastic_tcl.toml").read_text())
    loss = train(dataclasses.replace(config, epochs=12), progress=False)["test_loss"].values
    assert loss[-1] < 0.01 * loss[0], loss


def test_tcl_rule_trains_through_simulate():
    """rule = "tcl": the sawtooth drives the CpL clamp, E. coli memory synapses learn in time;
    the regression loss falls by more than an order of magnitude in a few epochs."""
    config = TrainConfig(
        rule="tcl", tcl_drive="cpl", variant="positive", eta=0.5, learning_rate=20.0, **REGRESSION
    )
    loss = train(dataclasses.replace(config, epochs=4), progress=False)["test_loss"].values
    assert loss[-1] < 0.1 * loss[0], loss
    with pytest.raises(ValueError, match="variant must be 'positive', 'negative' or 'random'"):
        train(dataclasses.replace(config, variant="centered", epochs=1), progress=False)
