"""Energy to accuracy of network learning: Temporal Contrastive Learning against explicit
equilibrium propagation (EP) and coupled learning (CpL) on the same task, with the energy each
spends to reach a test loss (docs/thermodynamics.md, "Energy to accuracy").

The heat rate of a circuit at state x is its dissipated power P(x) = sum over elements of
current x voltage drop (``network.power``): resistor networks sum_e g_e (v_i - v_j)^2 = 2 E;
diode networks the same sum over their crossbars (ideal diodes dissipate nothing; the bias
current sources deliver power, so P = 2 (E + b^T v)); Hopfield networks the resistors of
Hopfield's analog circuit (1984), ideal amplifiers whose input conductance is the weights'.
The elastic substrate has no dissipation at rest and is refused. Units: the energy unit of
each circuit is potential^2 x conductance, a power, so heat is in "energy x time" (joules for
volts, siemens and seconds). Heat flows into the environment (> 0).

Every method presents one mini-batch per cycle and holds each sample's network for the same
durations: tau_rest at zero perturbation and tau_fast + tau_slow perturbed (the TCL protocol's
sawtooth + rest, ``TrainConfig``). Per sample (quasi-static network):

- EP (positive nudge beta):  Q = tau_rest P(x_0) + (tau_fast + tau_slow) P(x_beta);
- CpL (clamp strength eta):  Q = tau_rest P(x_0) + (tau_fast + tau_slow) P(x_eta);
- TCL (the EP nudge ramps 0 -> beta in tau_fast and back in tau_slow, so every strength in
  [0, beta] is held for the same fraction of the ramps):
  Q = tau_rest P(x_0) + (tau_fast + tau_slow) int_0^1 P(x_{u beta}) du (Gauss-Legendre in u),
  plus the memories' housekeeping heat: one Markov memory per parameter, each dissipating its
  steady rate sigma_hk at zero current (``steady_dissipation``, kT per time) for the whole
  cycle, converted with ``thermal_energy`` (kT in the circuit's energy x time units).

The input switch between batches is not counted (the same for every method). The heat of an
epoch is taken at the parameters of its start (the TCL run does not expose them per cycle).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from synapse_dyn import training
from synapse_dyn.io import describe
from synapse_dyn.synapses import MarkovLadder

from .dissipation import steady_dissipation

METHODS = ("tcl", "ep", "cpl")
SUBSTRATES = ("resistor", "diode", "hopfield")  # the circuits with a dissipated power
KT_JOULE = 1.380649e-23 * 298.15  # kT at 25 C in joules (the circuit in V, S, s)
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_NODES, _WEIGHTS = (_NODES + 1.0) / 2, _WEIGHTS / 2  # on [0, 1]


def _phase_powers(network, w, inputs, targets, rule, strengths):
    """P(x_b) summed over the samples, per perturbation strength b (b = 0: the free state),
    shape (strengths,)."""

    def one(i, y):
        free = network.equilibrium(w, i)
        states = jax.vmap(lambda b: rule.perturb(network, w, i, y, free, b))(strengths)
        return jax.vmap(lambda x: network.power(x, w, i))(states)

    return jnp.sum(jax.vmap(one)(inputs, targets), axis=0)


_phase_powers_jit = eqx.filter_jit(_phase_powers)


def cycle_heat(method: str, network, w, inputs, targets, rule, config) -> float:
    """Heat of the cycles that present these samples (module docstring), energy x time."""
    ramps = config.tau_fast + config.tau_slow
    strength = float(rule.strength)
    fractions = np.concatenate([[0.0, 1.0], _NODES])
    powers = np.asarray(
        _phase_powers_jit(network, w, inputs, targets, rule, jnp.asarray(strength * fractions))
    )
    perturbed = powers[2:] @ _WEIGHTS if method == "tcl" else powers[1]
    return float(config.tau_rest * powers[0] + ramps * perturbed)


def learning_energy(
    config: training.TrainConfig,
    method: str,
    memory: MarkovLadder | None = None,
    thermal_energy: float = KT_JOULE,
) -> xr.Dataset:
    """Test loss after each epoch and the cumulative heat spent, for ``method`` (tcl, ep or cpl)
    on ``config``'s task and circuit (resistor, diode or hopfield); TCL adds the housekeeping
    heat of one ``memory`` (default ``MarkovLadder(0.1)``) per parameter. Dimension ``epoch``
    (0 = initial parameters)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if config.substrate not in SUBSTRATES:
        raise ValueError(
            f"energy to accuracy needs a dissipative circuit, one of {SUBSTRATES}; the "
            f"{config.substrate!r} substrate dissipates nothing at equilibrium."
        )
    config = training.TrainConfig(
        **{**config.__dict__, "rule": method, "variant": "positive", "tcl_drive": "ep"}
    )
    network, w, task = training.build(config)
    rule = training._rule(config)  # noqa: SLF001  (for tcl: the EP nudge the sawtooth drives)
    tcl = training._TCL(config, network, w, task, rule) if method == "tcl" else None  # noqa: SLF001
    memory = MarkovLadder(0.1) if memory is None else memory
    period = config.tau_rest + config.tau_fast + config.tau_slow
    housekeeping = float(steady_dissipation(memory, 0.0).dissipation[0]) * period  # kT
    housekeeping *= float(method == "tcl")  # explicit EP and CpL hold no memories
    n_parameters = sum(p.size for p in jax.tree.leaves(w))
    x, y = jnp.asarray(task.x_train), jnp.asarray(task.y_train)
    batches = len(x) // config.batch_size
    loss = [training.metrics(network, w, task, rule.cost)["test_loss"]]
    presented = batches * config.batch_size  # the last partial batch is dropped
    heats = []
    for epoch in range(config.epochs):
        rate = config.learning_rate * config.lr_decay**epoch
        heats.append(cycle_heat(method, network, w, x[:presented], y[:presented], rule, config))
        if tcl is not None:
            w = tcl.epoch(w, epoch, jnp.asarray(rate))
        else:
            w = training.sgd_epoch(
                network, rule, w, x, y, None, jnp.asarray(rate), config.batch_size
            )
        loss.append(training.metrics(network, w, task, rule.cost)["test_loss"])
    joule = np.cumsum([0.0, *heats])
    memory_heat = np.arange(config.epochs + 1) * batches * n_parameters * housekeeping
    ds = xr.Dataset(
        {
            "test_loss": ("epoch", np.array(loss), {"units": "1", "long_name": "test loss"}),
            "joule_heat": (
                "epoch",
                joule,
                {"units": "energy x time", "long_name": "cumulative Joule heat of the network"},
            ),
            "memory_heat": (
                "epoch",
                memory_heat,
                {"units": "kT", "long_name": "cumulative housekeeping heat of the memories"},
            ),
            "energy": (
                "epoch",
                joule + thermal_energy * memory_heat,
                {"units": "energy x time", "long_name": "cumulative energy spent"},
            ),
        },
        coords={
            "epoch": ("epoch", np.arange(config.epochs + 1), {"units": "1", "long_name": "epoch"})
        },
    )
    settings = {k: v for k, v in config.__dict__.items() if not isinstance(v, list)}
    return describe(ds, f"Energy to accuracy of {method}", {**settings, "method": method})


def energy_to_loss(ds: xr.Dataset, target: float) -> xr.DataArray:
    """The cumulative energy at which the test loss first falls to ``target`` (linear
    interpolation between epochs; NaN when it never does), over every other dimension."""

    def first(loss, energy):
        below = np.flatnonzero(loss <= target)
        if below.size == 0:
            return np.nan
        k = below[0]
        if k == 0:
            return 0.0
        fraction = (loss[k - 1] - target) / (loss[k - 1] - loss[k])
        return energy[k - 1] + fraction * (energy[k] - energy[k - 1])

    return xr.apply_ufunc(
        first, ds.test_loss, ds.energy, input_core_dims=[["epoch"], ["epoch"]], vectorize=True
    )


def energy_to_accuracy(
    config: training.TrainConfig,
    seeds,
    methods=METHODS,
    target_fraction: float = 0.5,
    memory: MarkovLadder | None = None,
    thermal_energy: float = KT_JOULE,
) -> xr.Dataset:
    """``learning_energy`` for every method and seed (dimensions method, seed, epoch), and per
    method the energy to reach ``target_fraction`` of the initial test loss: mean over seeds
    and its standard error (std / sqrt(seeds))."""
    runs = xr.concat(
        [
            xr.concat(
                [
                    learning_energy(
                        training.TrainConfig(**{**config.__dict__, "seed": int(seed)}),
                        method,
                        memory,
                        thermal_energy,
                    )
                    for seed in seeds
                ],
                "seed",
            )
            for method in methods
        ],
        "method",
    )
    runs = runs.assign_coords(
        method=("method", list(methods), {"units": "1", "long_name": "learning method"}),
        seed=("seed", np.asarray(seeds), {"units": "1", "long_name": "seed of task and network"}),
    )
    target = target_fraction * runs.test_loss.isel(epoch=0)
    reach = xr.concat(
        [energy_to_loss(runs.sel(seed=s), float(target.sel(seed=s).isel(method=0))) for s in seeds],
        "seed",
    ).assign_coords(seed=runs.seed)
    count = reach.count("seed")
    runs["energy_to_target"] = reach.assign_attrs(
        units="energy x time",
        long_name=f"energy spent to reach {target_fraction:g} of the initial test loss",
    )
    runs["energy_to_target_mean"] = reach.mean("seed").assign_attrs(
        units="energy x time", long_name="mean over seeds of the energy to the target loss"
    )
    runs["energy_to_target_error"] = (reach.std("seed", ddof=1) / np.sqrt(count)).assign_attrs(
        units="energy x time", long_name="standard error of that mean"
    )
    settings = {
        "target_fraction": target_fraction,
        "thermal_energy": thermal_energy,
        **{k: v for k, v in config.__dict__.items() if not isinstance(v, list)},
    }
    return describe(runs, "Energy to accuracy: TCL, EP and coupled learning", settings)
