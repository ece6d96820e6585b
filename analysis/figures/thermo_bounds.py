"""Information-thermodynamic bounds over the Fig. 6B kernel family: every ESA ladder of
``fig6b.random_ladders`` (gamma, rate factor, ligand step), exactly, against three bounds.

- Sartori et al. 2014, entropy form: the ladder senses a ligand redrawn every protocol period
  T = tau_fast + tau_slow = 18 from {0, step} (probability 1/2 each); entropy produced per
  cycle Sigma >= information erased about the past ligand.
- Sartori et al. 2014, energy form: heat per cycle Q / kT >= information written about the
  present ligand.
- Koyuk-Seifert 2019: the weight of the synapse (``weight_channels``: force 1 kT per step per
  unit output, rate 1 per time) under the sawtooth ligand drive s(t) = step x Sawtooth(3, 15)
  from 0 to step (16 midpoint pieces per ramp); Var J Sigma >= 2 (T d<J>/dT)^2 per period.
  The steady-state TUR (Barato-Seifert) is reported beside it: it need not hold here.

Units: information in nats, heat in kT, entropy production in k_B, all per protocol period;
the ladders run with time_scale 5 (5 Markov time units per simulation time unit).
"""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from jaxtyping import ArrayLike, Float

from synapse_dyn.analysis import thermodynamics as th
from synapse_dyn.analysis.figures import fig6b
from synapse_dyn.io import describe
from synapse_dyn.protocols import Sawtooth
from synapse_dyn.synapses import MarkovLadder

N_STEPS = 16
DRIVE = Sawtooth(fig6b.TAU_FAST, fig6b.TAU_SLOW, free=0.0, clamped=1.0)


@jax.jit
def ladder_matrices(gamma, rate_factor, signals):
    """Rate matrices (simulation time units) of ladders (gamma, rate_factor) at ``signals``
    (one row of ligand values per ladder): shape (ladders, signals, 10, 10)."""
    return jax.vmap(lambda g, r, s: MarkovLadder(g, r).rate_matrix(s))(gamma, rate_factor, signals)


def family_bounds(
    gamma: Float[ArrayLike, " kernel"],
    rate_factor: Float[ArrayLike, " kernel"],
    step: Float[ArrayLike, " kernel"],
) -> xr.Dataset:
    """The exact bounds (module docstring) for ladders with these parameters, one per kernel."""
    gamma, rate_factor, step = (np.asarray(a, float) for a in (gamma, rate_factor, step))
    period = float(DRIVE.period)
    sensing = th.sensing_bounds(
        np.asarray(ladder_matrices(gamma, rate_factor, np.stack([0 * step, step], axis=1))),
        np.array([0.5, 0.5]),
        period,
    )
    values, durations = th.piecewise_drive(DRIVE, N_STEPS)
    channels = jax.vmap(lambda g, r: th.weight_channels(MarkovLadder(g, r)))(
        jnp.asarray(gamma), jnp.asarray(rate_factor)
    )
    current = th.current_statistics(
        np.asarray(ladder_matrices(gamma, rate_factor, step[:, None] * values[None, :])),
        durations,
        channels=np.asarray(channels),
    )
    current = current.rename(
        {name: f"weight_{name}" for name in current.data_vars if "ratio" not in name}
    )
    return xr.merge([sensing.drop_vars("probability"), current], combine_attrs="override")


def compute(
    quick: bool = False, progress: bool = True, n_batches: int | None = None, seed: int = 6
) -> xr.Dataset:
    """The bounds for ``50 n_batches`` ladders of the Fig. 6B family (default 100 batches,
    5,000 kernels; quick: 2 batches)."""
    n_batches = (2 if quick else 100) if n_batches is None else n_batches
    family = fig6b.random_ladders(n_batches, seed)
    ds = family_bounds(**family).rename({"case": "kernel"})
    n = ds.sizes["kernel"]
    for name, units, long_name in (
        ("gamma", "1", "detailed-balance breaking factor gamma"),
        ("rate_factor", "1 / Markov time", "activity switching rate factor"),
        ("step", "uM", "ligand step (signal values 0 and step)"),
    ):
        ds[name] = ("kernel", family[name], {"units": units, "long_name": long_name})
    ds = ds.assign_coords(kernel=("kernel", np.arange(n), {"units": "1", "long_name": "kernel"}))
    config = {
        "figure": "thermo_bounds",
        "n_kernels": n,
        "seed": seed,
        "period": float(DRIVE.period),
        "n_steps": N_STEPS,
        "signal_probabilities": [0.5, 0.5],
        "weight_force": 1.0,
        "weight_rate": 1.0,
    }
    return describe(ds, "Information-thermodynamic bounds over the Fig. 6B ladders", config)


def plot(ds: xr.Dataset):
    figure, axes = plt.subplots(1, 4, figsize=(14.0, 3.4))
    colour = np.log10(ds.gamma.values)
    panels = (
        (
            ds.information_erased,
            ds.entropy_production,
            "information erased (nats)",
            "entropy produced Sigma (k_B)",
            "Sartori: Sigma >= I_erased",
            ds.erasure_tightness,
        ),
        (
            ds.information_written,
            ds.heat,
            "information written (nats)",
            "heat Q (kT)",
            "Sartori: Q >= I_written",
            ds.writing_tightness,
        ),
        (
            2 * ds.weight_period_derivative**2,
            ds.weight_variance * ds.weight_entropy_production,
            "2 (T d<J>/dT)^2",
            "Var J  Sigma",
            "Koyuk-Seifert: Var Sigma >= 2 (T dJ/dT)^2",
            1 / ds.periodic_ratio,
        ),
    )
    for axis, (bound, value, xlabel, ylabel, title, tightness) in zip(axes, panels, strict=False):
        scatter = axis.scatter(bound, value, s=4, c=colour, cmap="viridis")
        low = float(np.nanmin(bound.where(bound > 0)))
        high = float(np.nanmax(value))
        axis.plot([low, high], [low, high], "k--", lw=1, label="bound")
        axis.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel)
        axis.set_title(
            f"{title}\nmedian tightness {float(np.nanmedian(tightness)):.2g}", fontsize=8
        )
    axes[3].scatter(ds.gamma, ds.tur_ratio, s=4, c=colour, cmap="viridis")
    axes[3].axhline(1.0, color="k", ls="--", lw=1)
    failing = int((ds.tur_ratio < 1).sum())
    axes[3].set(
        xscale="log",
        yscale="log",
        xlabel="gamma",
        ylabel="Var J Sigma / (2 <J>^2)",
    )
    axes[3].set_title(f"steady-state TUR: fails for {failing} of {ds.sizes['kernel']}", fontsize=8)
    figure.colorbar(scatter, ax=axes, label="log10 gamma", shrink=0.8)
    return figure
