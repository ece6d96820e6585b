"""Fig. 6B: non-equilibrium dissipation improves learning. Random ESA-ladder kernels
(tcl_model.md Sec. 2.7 and the Fig. 6 recipe): the more the adaptation network dissipates,
the more nearly perfect its adaptation and the smaller the offset error of the update.

Per kernel: gamma from U(0, 1] (10 of every 50) or y 10^-x (y ~ U(0, 1], x in {0..24});
each batch of 50 shares a ligand step in {5..249} and a rate factor in {1..99}. Protocol
tau_fast = 3, tau_slow = 15, mean current 10, A_max = 50, dead zone
theta_g = |-A_max/tau_slow + I (mean + A_max/2)| with I the kernel area; the update is swept
over 500 amplitudes A in [0, 1.25 A_max) and the offset is the intercept of the least-squares
line of dw/A_max against A/A_max from the first point with dw/A_max > 0.05 up to A = A_max.
The dissipation is the steady-state entropy production at s = 0 of the same rate matrix
(gamma and rate factor) that made the kernel, in kT per Markov time unit.
"""

import functools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from scipy import stats

from synapse_dyn._checks import require_in_range, require_positive
from synapse_dyn.analysis import sweeps
from synapse_dyn.analysis.thermodynamics import entropy_production_rate
from synapse_dyn.io import describe
from synapse_dyn.protocols import Sawtooth
from synapse_dyn.synapses import DeadZone, cycle_update
from synapse_dyn.synapses.cycle import wraps_needed
from synapse_dyn.synapses.markov import MarkovLadder, esa_rate_matrix

TAU_FAST, TAU_SLOW, MEAN, AMPLITUDE_MAX = 3.0, 15.0, 10.0, 50.0
N_AMPLITUDES, FIT_END, ONSET = 500, 400, 0.05
PER_BATCH, UNIFORM_PER_BATCH = 50, 10
SHAPE = Sawtooth(TAU_FAST, TAU_SLOW, free=-0.5, clamped=0.5)


def amplitudes() -> np.ndarray:
    """The recipe's sweep, 500 amplitudes in [0, 1.25 A_max)."""
    return np.linspace(0.0, 1.25 * AMPLITUDE_MAX, N_AMPLITUDES, endpoint=False)


def random_ladders(n_batches: int, seed: int) -> dict[str, np.ndarray]:
    """gamma, rate factor and ligand step of ``50 n_batches`` random ladders (module docstring)."""
    rng = np.random.default_rng(seed)
    step = np.repeat(rng.integers(5, 250, n_batches), PER_BATCH).astype(float)
    rate_factor = np.repeat(rng.integers(1, 100, n_batches), PER_BATCH).astype(float)
    uniform = 1.0 - rng.random((n_batches, UNIFORM_PER_BATCH))  # U(0, 1]
    small = PER_BATCH - UNIFORM_PER_BATCH
    scaled = (1.0 - rng.random((n_batches, small))) * 10.0 ** -rng.integers(
        0, 25, (n_batches, small)
    )
    gamma = np.concatenate([uniform, scaled], axis=1).ravel()
    return {"gamma": gamma, "rate_factor": rate_factor, "step": step}


def exact_kernel_area(memory, step, base=0.0, window=1.0):
    """The area I = -Delta u / m1 of the recipe's kernel K = -u' / m1 on [0, window] from the
    exact step response, by linear solves instead of samples: with A the rate matrix after
    the step, p(t) = p_inf + e^(A t) d0 (d0 = p(0) - p_inf, zero sum), u - u(0) = -c.(p - p(0)),
        Delta u = -c.(e^(A W) - 1) d0,
        m1 = integral_0^W t u' dt = W Delta u - integral_0^W (u - u(0)) dt
           = W Delta u + c.(x - W d0),  A x = (e^(A W) - 1) d0, sum(x) = 0.
    The sampled kernel (dt = 1e-4) peaks at t = 0, where the rectangle rule of the authors'
    code adds dt K(0) / 2 to this area."""
    matrix = memory.rate_matrix(base + step)
    start = memory.steady_state(base)
    decay = memory.steady_state(base + step) - start
    d0 = -decay
    grown = jax.scipy.linalg.expm(matrix * window) @ d0 - d0
    c = memory.observable
    change = -c @ grown
    # A is singular (probability conservation): append the zero-sum condition
    system = jnp.concatenate([matrix, jnp.ones((1, matrix.shape[0]))])
    x = jnp.linalg.lstsq(system, jnp.append(grown, 0.0))[0]
    first = window * change + c @ (x - window * d0)
    return -change / first


@functools.partial(jax.jit, static_argnames="n_grid")
def _chunk(gamma, rate_factor, step, amplitude, n_grid):
    """Per ladder of a chunk: the exact and the rectangle-rule kernel areas, the dead zone
    and dw/A_max over the sweep for each, and the dissipation."""

    def one(gamma, rate_factor, step):
        memory = MarkovLadder(gamma, rate_factor)
        kernel = memory.kernel(step)
        areas = jnp.stack([exact_kernel_area(memory, step), kernel.dt * jnp.sum(kernel.values)])
        thresholds = jnp.abs(-AMPLITUDE_MAX / TAU_SLOW + areas * (MEAN + AMPLITUDE_MAX / 2))
        n_wraps = wraps_needed(kernel, SHAPE.period)
        updates = jax.vmap(
            lambda theta: cycle_update(
                kernel, DeadZone(theta), SHAPE, amplitude, MEAN, n_grid, n_wraps
            )
        )(thresholds)
        dissipation = entropy_production_rate(esa_rate_matrix(0.0, gamma, rate_factor))
        return areas, thresholds, updates / AMPLITUDE_MAX, dissipation

    return jax.vmap(one)(gamma, rate_factor, step)


def offsets(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Intercepts of the least-squares lines of y on x (one per row of y) over the points from
    the first with y > 0.05 up to, not including, index 400 (A = A_max). NaN where no point
    before A_max exceeds 0.05: that synapse does not learn, and has no offset to speak of
    (the authors' code regressed from the first point instead)."""
    index = np.arange(x.size)
    above = y[:, :FIT_END] > ONSET
    learns = above.any(axis=1)
    start = np.where(learns, above.argmax(axis=1), 0)
    with np.errstate(invalid="ignore", divide="ignore"):  # rows that do not learn -> NaN
        weight = ((index >= start[:, None]) & (index < FIT_END)).astype(float)
        count = weight.sum(axis=1)
        mean_x = (weight * x).sum(axis=1) / count
        mean_y = (weight * y).sum(axis=1) / count
        dx = x - mean_x[:, None]
        slope = (weight * dx * (y - mean_y[:, None])).sum(axis=1) / (weight * dx**2).sum(axis=1)
        return np.where(learns, mean_y - slope * mean_x, np.nan)


class LadderResponse(sweeps.AbstractExperiment):
    """Kernel area, update dw/A_max over ``amplitudes`` and dissipation of ESA ladders of swept
    gamma, rate factor and ligand step, under the figure's protocol (module docstring)."""

    amplitudes: jax.Array
    n_grid: int

    def parameters(self):
        return {
            "gamma": sweeps.Parameter("1", "detailed-balance breaking factor gamma"),
            "rate_factor": sweeps.Parameter("1 / Markov time", "activity switching rate factor"),
            "step": sweeps.Parameter("uM", "ligand step of the kernel's step response"),
        }

    def outputs(self):
        return {
            "dissipation": sweeps.Output(
                (),
                "float64",
                "kT / Markov time",
                "steady-state entropy production rate at s = 0 (5 Markov times = 1 time)",
            ),
            "kernel_area": sweeps.Output(
                (), "float64", "1 / time", "kernel area I (first moment -1), exact"
            ),
            "kernel_area_rectangle": sweeps.Output(
                (), "float64", "1 / time", "kernel area by the authors' rectangle rule, dt = 1e-4"
            ),
            "threshold": sweeps.Output(
                (), "float64", "current / time", "dead zone theta_g from the exact area"
            ),
            "threshold_rectangle": sweeps.Output(
                (), "float64", "current / time", "dead zone theta_g from the rectangle-rule area"
            ),
            "dw": sweeps.Output(("amplitude",), "float64", "1", "update per cycle dw / A_max"),
            "dw_rectangle": sweeps.Output(
                ("amplitude",), "float64", "1", "dw / A_max with the rectangle-rule dead zone"
            ),
        }

    def coords(self):
        return {
            "amplitude": (
                np.asarray(self.amplitudes),
                {"units": "current", "long_name": "contrast A = s_clamped - s_free"},
            )
        }

    def check(self, points):
        require_in_range("gamma", points["gamma"], 0, 1, closed=(False, True))
        require_positive("rate_factor", points["rate_factor"])
        require_positive("step", points["step"])

    def prepare(self, points):
        return self

    def __call__(self, points):
        areas, thresholds, updates, dissipation = _chunk(
            points["gamma"], points["rate_factor"], points["step"], self.amplitudes, self.n_grid
        )
        return {
            "dissipation": dissipation,
            "kernel_area": areas[:, 0],
            "kernel_area_rectangle": areas[:, 1],
            "threshold": thresholds[:, 0],
            "threshold_rectangle": thresholds[:, 1],
            "dw": updates[:, 0],
            "dw_rectangle": updates[:, 1],
        }

    def finish(self, ds):
        return ds

    def config(self):
        return {
            "n_grid": self.n_grid,
            "n_amplitudes": int(self.amplitudes.size),
            "tau_fast": TAU_FAST,
            "tau_slow": TAU_SLOW,
            "mean_current": MEAN,
            "amplitude_max": AMPLITUDE_MAX,
        }

    def bytes_per_point(self):
        return 64 * self.n_grid * 8


def compute(
    quick: bool = False,
    progress: bool = True,
    n_batches: int | None = None,
    seed: int = 6,
    n_grid: int = 2**13,
    chunk: int = 250,
    client=None,
    store=None,
    resume: bool = False,
) -> xr.Dataset:
    """The figure's data: 5,000 random ladders (quick: 200) through the sweep machinery in
    chunks of ``chunk`` (``client``, ``store`` and ``resume`` as in ``fig4c.compute``);
    ``n_grid`` points per protocol period for the exact cycle update."""
    n_batches = (4 if quick else 100) if n_batches is None else n_batches
    sweep = amplitudes()
    ds = sweeps.run(
        LadderResponse(jnp.asarray(sweep), n_grid),
        sweeps.Points("kernel", **random_ladders(n_batches, seed)),
        chunk=chunk,
        client=client,
        store=store,
        resume=resume,
        progress=progress,
        title="fig6b kernels",
    )
    n = ds.sizes["kernel"]
    ds = ds.assign(
        offset=(
            "kernel",
            offsets(sweep / AMPLITUDE_MAX, ds.dw.values),
            {"units": "1", "long_name": "offset error: intercept of dw/A_max against A/A_max"},
        ),
        offset_rectangle=(
            "kernel",
            offsets(sweep / AMPLITUDE_MAX, ds.dw_rectangle.values),
            {"units": "1", "long_name": "offset error with the rectangle-rule dead zone"},
        ),
    ).assign_coords(kernel=("kernel", np.arange(n), {"units": "1", "long_name": "kernel index"}))
    config = {
        "figure": "fig6b",
        "n_kernels": n,
        "seed": seed,
        "n_grid": n_grid,
        "tau_fast": TAU_FAST,
        "tau_slow": TAU_SLOW,
        "mean_current": MEAN,
        "amplitude_max": AMPLITUDE_MAX,
    }
    return describe(ds, "Fig. 6B: dissipation improves learning (ESA-ladder kernels)", config)


def trend(ds: xr.Dataset):
    """Spearman rank correlation of |offset| with the dissipation over the kernels that learn
    (scipy result; ranks of |offset| are those of ln|offset/mean|)."""
    learns = np.isfinite(ds.offset.values)
    return stats.spearmanr(ds.dissipation.values[learns], np.abs(ds.offset.values[learns]))


def plot(ds: xr.Dataset):
    figure, axis = plt.subplots(figsize=(4.0, 3.2))
    y = np.log(np.abs(ds.offset / MEAN))
    axis.scatter(ds.dissipation, y, s=5, c=np.log10(ds.gamma), cmap="viridis")
    result = trend(ds)
    axis.set(
        xlabel="dissipation sigma (kT / Markov time)",
        ylabel="ln |offset / mean|",
        title=f"Spearman rho = {result.statistic:.2f}",
    )
    figure.colorbar(axis.collections[0], label="log10 gamma")
    figure.tight_layout()
    return figure
