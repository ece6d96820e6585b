"""Heat and noise: Joule heat of resistor networks, Sekimoto heat and total entropy
production of Langevin trajectories, their ensemble statistics, and learning against
temperature.

Units: energies in kT (or the circuit's own energy unit where stated), entropies in k_B. Heat
is counted positive when it flows INTO the environment.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, ArrayLike, Bool, Float, Int
from scipy.integrate import cumulative_trapezoid
from scipy.stats import sem

from synapse_dyn._checks import require_positive
from synapse_dyn.io import describe
from synapse_dyn.noise import Thermal, langevin
from synapse_dyn.protocols import AbstractProtocol
from synapse_dyn.synapses.memory import Synapse


def incidence_matrix(edges: Int[ArrayLike, "e 2"], n_nodes: int) -> Float[Array, "e n"]:
    """B with B[e, i] = +1, B[e, j] = -1 for edge e = (i, j): dv = B v is the edge voltage."""
    edges = np.asarray(edges)
    if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
        raise ValueError(
            f"edges must be an integer array of shape (E, 2), got {edges.dtype} {edges.shape}."
        )
    if edges.size and (edges.min() < 0 or edges.max() >= n_nodes):
        raise ValueError(
            f"edges name nodes outside 0..{n_nodes - 1} (got {edges.min()}..{edges.max()})."
        )
    rows = np.arange(edges.shape[0])
    return (
        jnp.zeros((edges.shape[0], n_nodes))
        .at[rows, edges[:, 0]]
        .add(1.0)
        .at[rows, edges[:, 1]]
        .add(-1.0)
    )


def joule_power(
    incidence: Float[ArrayLike, "e n"],
    conductances: Float[ArrayLike, "... e"],
    potentials: Float[ArrayLike, "... n"],
) -> Float[Array, "..."]:
    """Joule dissipation rate P = sum_e g_e (dv_e)^2, dv = B v (energy per time)."""
    require_positive("conductances", conductances, allow_zero=True)
    drop = jnp.asarray(potentials, float) @ jnp.asarray(incidence, float).T
    return jnp.sum(
        jnp.broadcast_to(jnp.asarray(conductances, float), drop.shape) * drop**2, axis=-1
    )


def source_power(
    currents: Float[ArrayLike, "... n"], potentials: Float[ArrayLike, "... n"]
) -> Float[Array, "..."]:
    """Power delivered by current sources, P = sum_i I_i v_i (I_i injected into node i)."""
    return jnp.sum(jnp.asarray(currents, float) * jnp.asarray(potentials, float), axis=-1)


def joule_heat(
    times: Float[ArrayLike, " t"],
    incidence: Float[ArrayLike, "e n"],
    conductances: Float[ArrayLike, "*t e"],
    potentials: Float[ArrayLike, "t n"],
    *,
    period: float | None = None,
    clamped: Bool[ArrayLike, " t"] | None = None,
) -> xr.Dataset:
    """Joule heat of a resistor network along a recorded protocol: power P(t), cumulative
    heat int P dt (trapezoid rule), and with ``period`` the heat per cycle; with a boolean
    ``clamped`` mask (True in the clamped phase) the per-cycle heat split by phase."""
    times = np.asarray(times, float)
    if times.ndim != 1 or times.size < 2 or np.any(np.diff(times) <= 0):
        raise ValueError("times must be a strictly increasing 1-D array of at least two times.")
    power = np.asarray(joule_power(incidence, conductances, potentials))
    cumulative = cumulative_trapezoid(power, times, initial=0.0)
    data = {
        "power": (
            "time",
            power,
            {"units": "energy / time", "long_name": "Joule dissipation rate sum g dv^2"},
        ),
        "heat": ("time", cumulative, {"units": "energy", "long_name": "cumulative Joule heat"}),
    }
    coords = {"time": ("time", times, {"units": "time", "long_name": "time"})}
    if period is not None:
        require_positive("period", period)
        n_cycles = int(np.floor((times[-1] - times[0]) / period + 1e-9))
        bounds = times[0] + period * np.arange(n_cycles + 1)
        data["heat_per_cycle"] = (
            "cycle",
            np.diff(np.interp(bounds, times, cumulative)),
            {"units": "energy", "long_name": "Joule heat per protocol cycle"},
        )
        coords["cycle"] = ("cycle", np.arange(n_cycles), {"units": "1", "long_name": "cycle index"})
        if clamped is not None:
            mask = np.asarray(clamped, bool)
            per_phase = []
            for phase_mask in (~mask, mask):
                phase_power = np.where(phase_mask, power, 0.0)
                phase_heat = cumulative_trapezoid(phase_power, times, initial=0.0)
                per_phase.append(np.diff(np.interp(bounds, times, phase_heat)))
            data["heat_by_phase"] = (
                ("cycle", "phase"),
                np.stack(per_phase, axis=1),
                {
                    "units": "energy",
                    "long_name": "Joule heat per cycle in the free and clamped phases",
                },
            )
            coords["phase"] = (
                "phase",
                np.array(["free", "clamped"]),
                {"units": "1", "long_name": "protocol phase"},
            )
    ds = xr.Dataset(data, coords=coords)
    return describe(ds, "Joule dissipation of a resistor network", {"period": period})


def sekimoto_heat(
    times: Float[ArrayLike, " t"],
    positions: Float[ArrayLike, "t ..."],
    force: Callable,
    args=None,
) -> Float[Array, " t"]:
    """Cumulative Sekimoto heat of a recorded trajectory, Q(t_k) = sum_{j<k} F(x_mid, t_mid) .
    (x_{j+1} - x_j) with midpoints (the Stratonovich integral of F o dx): the energy the force
    dissipates into the bath. Post-hoc estimator, converging as the recording step -> 0."""
    times = jnp.asarray(times, float)
    x = jnp.asarray(positions, float)
    middle, t_middle = 0.5 * (x[1:] + x[:-1]), 0.5 * (times[1:] + times[:-1])
    work = jax.vmap(lambda t, xm, dx: jnp.sum(force(t, xm, args) * dx))(
        t_middle, middle, x[1:] - x[:-1]
    )
    return jnp.concatenate([jnp.zeros(1), jnp.cumsum(work)])


def total_entropy_production(
    heat: Float[ArrayLike, "..."],
    temperature: Float[ArrayLike, ""],
    log_density_initial: Float[ArrayLike, "..."],
    log_density_final: Float[ArrayLike, "..."],
) -> Float[Array, "..."]:
    """Total (stochastic) entropy production of a trajectory, in k_B:
    Delta s_tot = Q / kT + ln p(x_0, t_0) - ln p(x_t, t) (medium plus system entropy)."""
    require_positive("temperature", temperature)
    return (
        jnp.asarray(heat) / temperature
        + jnp.asarray(log_density_initial)
        - jnp.asarray(log_density_final)
    )


def mean_with_error(samples: Float[ArrayLike, "n ..."]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error) over the first axis."""
    samples = np.asarray(samples, float)
    return samples.mean(axis=0), sem(samples, axis=0)


def heat_statistics(
    times: Float[ArrayLike, " t"],
    heat: Float[ArrayLike, "sample t"],
    temperature: Float[ArrayLike, ""],
    entropy_production: Float[ArrayLike, "sample t"] | None = None,
) -> xr.Dataset:
    """Ensemble statistics of Sekimoto heats Q(sample, time) (e.g. from ``langevin`` vmapped
    over seeds): mean and standard error of Q and of the medium entropy Q/kT at each time,
    and the mean heat rate over the record, (Q(t_end) - Q(t_0)) / (t_end - t_0), the
    steady-state dissipation rate (its entropy production rate is heat_rate / kT). With
    ``entropy_production`` (Delta s_tot per sample and time) its mean and error too."""
    times = np.asarray(times, float)
    heat = np.asarray(heat, float)
    require_positive("temperature", temperature)
    if heat.ndim != 2 or heat.shape[1] != times.size or heat.shape[0] < 2:
        raise ValueError(
            f"heat must have shape (samples >= 2, {times.size} times), got {heat.shape}."
        )
    mean, error = mean_with_error(heat)
    rate, rate_error = mean_with_error((heat[:, -1] - heat[:, 0]) / (times[-1] - times[0]))
    variables = {
        "heat": (("time",), mean, "energy", "mean Sekimoto heat into the bath"),
        "heat_standard_error": (("time",), error, "energy", "standard error of the mean heat"),
        "medium_entropy": (
            ("time",),
            mean / temperature,
            "k_B",
            "mean entropy flow into the medium Q/kT",
        ),
        "heat_rate": ((), rate, "energy / time", "mean heat rate over the record"),
        "heat_rate_standard_error": (
            (),
            rate_error,
            "energy / time",
            "standard error of the heat rate",
        ),
    }
    if entropy_production is not None:
        total, total_error = mean_with_error(entropy_production)
        variables["entropy_production"] = (("time",), total, "k_B", "mean total entropy production")
        variables["entropy_production_standard_error"] = (
            ("time",),
            total_error,
            "k_B",
            "standard error of the total entropy production",
        )
    ds = xr.Dataset(
        {
            name: (dims, value, {"units": units, "long_name": long_name})
            for name, (dims, value, units, long_name) in variables.items()
        },
        coords={"time": ("time", times, {"units": "time", "long_name": "time"})},
    )
    return describe(
        ds,
        "Heat and entropy production of Langevin trajectories",
        {"temperature": float(temperature), "n_samples": heat.shape[0]},
    )


def learning_vs_temperature(
    synapse: Synapse,
    signal: AbstractProtocol,
    temperatures: Float[ArrayLike, " k"],
    *,
    mobility: float,
    dt: float,
    n_samples: int = 32,
    cycles: int = 2,
    seed: int = 0,
    brownian: str = "virtual",
) -> xr.Dataset:
    """Learning quality against temperature: the synapse's memory z gets thermal noise of
    mobility mu (stated: z has no energy, so kT alone does not fix the noise; in
    z^2 / (kT time unit)), dz = f(z, s) dt + sqrt(2 mu kT) dW, the weight moves
    deterministically, dw = -alpha g(u) dt; the update of the last of ``cycles`` periods,
    dw = -(w(end) - w(end - T)) / alpha, over ``n_samples`` seeded noise paths per temperature,
    its mean, spread and rms error against the noise-free run (same solver). ``brownian``:
    the kind of seeded Brownian path (``synapse_dyn.noise.AbstractNoise.brownian``)."""
    temperatures = np.atleast_1d(np.asarray(temperatures, float))
    Thermal(temperatures, mobility)  # validates
    if not isinstance(cycles, int) or cycles < 1:
        raise ValueError(f"cycles must be a positive integer, got {cycles!r}.")
    period = float(signal.period)
    t1 = cycles * period
    memory, g, rate = synapse.memory, synapse.nonlinearity, synapse.learning_rate
    z0 = memory.steady_state(signal(0.0))
    n = z0.shape[-1]

    mobilities = jnp.concatenate([jnp.full(n, float(mobility)), jnp.ones(1)])

    def force(t, x, args):  # langevin's drift is mobility x force
        s = signal(t)
        velocity = jnp.concatenate(
            [memory.vector_field(x[:n], s), (-rate * g(memory.output(x[:n], s)))[None]]
        )
        return velocity / mobilities

    def update(temperature, sample):
        noise = Thermal(jnp.concatenate([jnp.full(n, temperature), jnp.zeros(1)]), mobilities)
        x0 = jnp.concatenate([z0, jnp.zeros(1)])
        ys = langevin(
            force,
            x0,
            noise,
            t1=t1,
            dt=dt,
            seed=sample,
            saveat=jnp.array([t1 - period, t1]),
            brownian=brownian,
        ).ys[0]
        return -(ys[1, n] - ys[0, n]) / rate

    grid = jax.jit(jax.vmap(jax.vmap(update, (None, 0)), (0, None)))
    with_zero = jnp.concatenate([jnp.zeros(1), jnp.asarray(temperatures)])  # + the reference
    updates = np.asarray(grid(with_zero, seed + jnp.arange(n_samples)))
    reference, updates = float(updates[0, 0]), updates[1:]
    mean, error = mean_with_error(updates.T)
    unit = {"units": "current x time"}
    ds = xr.Dataset(
        {
            "dw": (
                ("temperature", "sample"),
                updates,
                {**unit, "long_name": "update of the last cycle (the weight moves by -alpha dw)"},
            ),
            "dw_mean": ("temperature", mean, {**unit, "long_name": "mean update"}),
            "dw_standard_error": (
                "temperature",
                error,
                {**unit, "long_name": "standard error of the mean update"},
            ),
            "dw_spread": (
                "temperature",
                updates.std(axis=1, ddof=1),
                {**unit, "long_name": "standard deviation of the update"},
            ),
            "rms_error": (
                "temperature",
                np.sqrt(np.mean((updates - reference) ** 2, axis=1)),
                {**unit, "long_name": "rms deviation from the noise-free update"},
            ),
            "dw_noise_free": (
                (),
                reference,
                {**unit, "long_name": "noise-free update (same solver)"},
            ),
        },
        coords={
            "temperature": (
                "temperature",
                temperatures,
                {"units": "kT", "long_name": "temperature of the memory's bath"},
            ),
            "sample": (
                "sample",
                np.arange(n_samples),
                {"units": "1", "long_name": "noise path (seed offset)"},
            ),
        },
    )
    config = {
        "synapse": repr(synapse),
        "signal": repr(signal),
        "dt": dt,
        "cycles": cycles,
        "seed": seed,
        "brownian": brownian,
    }
    return describe(ds, "Learning quality against temperature", config)
