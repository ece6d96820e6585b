"""Synapse-level response of TCL: the update per cycle as a function of the contrast
A = s_clamped - s_free, its three regimes, and the learning range [A_min, A_max].

Regimes (tcl_model.md, Sec. 2.4), read off the extremes of u over the cycle, u_A = I mean + A v:
  0 "no_update":     g vanishes at both extremes, so everywhere (A < A_onset);
  1 "contrastive":   g acts on one lobe of u only (the fast ramp): Delta ~ A;
  2 "cancellation":  g acts on both lobes and the ramps cancel (A > A_cancel).
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from synapse_dyn._checks import require_nonempty, require_positive, require_x64
from synapse_dyn._progress import tqdm
from synapse_dyn.protocols import AbstractProtocol, Sawtooth
from synapse_dyn.synapses import (
    AbstractKernel,
    AbstractNonlinearity,
    cycle_update,
    periodic_response,
)
from synapse_dyn.synapses.cycle import warn_if_fast_ramp_short, wraps_needed

from .fits import fit_three_segments

REGIMES = ("no_update", "contrastive", "cancellation")


@functools.partial(jax.jit, static_argnames=("n_grid", "n_wraps"))
def _curves(kernel, nonlinearity, shape, amplitudes, mean, n_grid, n_wraps):
    def one(nonlinearity, shape):
        update = cycle_update(kernel, nonlinearity, shape, amplitudes, mean, n_grid, n_wraps)
        _, v = periodic_response(kernel, shape, n_grid, n_wraps)
        offset = mean * kernel.area
        acts_high = nonlinearity(offset + amplitudes * jnp.max(v)) != 0
        acts_low = nonlinearity(offset + amplitudes * jnp.min(v)) != 0
        regime = acts_high.astype(jnp.int8) + acts_low.astype(jnp.int8)
        return update, regime

    return jax.vmap(one)(nonlinearity, shape)


def _batch_size(tree) -> int:
    sizes = {np.shape(leaf)[0] for leaf in jax.tree.leaves(tree) if np.ndim(leaf) > 0}
    if len(sizes) > 1:
        raise ValueError(
            f"batched protocol and nonlinearity parameters differ in length: {sorted(sizes)}."
        )
    return sizes.pop() if sizes else 0


def response_curves(
    kernel: AbstractKernel,
    nonlinearity: AbstractNonlinearity,
    shape: AbstractProtocol,
    amplitudes,
    mean: float = 0.0,
    n_grid: int = 2**15,
    chunk: int = 50,
    progress: bool = False,
) -> xr.Dataset:
    """Delta(A) = integral over a cycle of g(u) for s(t) = mean + A shape(t), with regimes.

    ``shape`` and ``nonlinearity`` may carry a leading batch axis on their parameters (e.g.
    ``Sawtooth(tau_fast=array, tau_slow=array, ...)``, ``DeadZone(threshold=array)``): the
    result then has a ``protocol`` dimension, computed in chunks of ``chunk`` protocols with
    one compilation. The parameter itself moves by -alpha * Delta.
    """
    require_x64("response_curves")
    amplitudes = np.asarray(amplitudes, dtype=float)
    require_nonempty("amplitudes", amplitudes)
    require_positive("amplitudes", amplitudes, allow_zero=True)
    batch = _batch_size((nonlinearity, shape))
    if batch:
        shape, nonlinearity = (
            jax.tree.map(lambda a: jnp.broadcast_to(jnp.asarray(a, dtype=float), (batch,)), tree)
            for tree in (shape, nonlinearity)
        )
    else:
        shape, nonlinearity = (
            jax.tree.map(lambda a: jnp.asarray(a, dtype=float)[None], t)
            for t in (shape, nonlinearity)
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_fast_ramp_short(kernel, shape)
    if caught and isinstance(shape, Sawtooth):
        short = np.asarray(jnp.minimum(shape.tau_fast, shape.tau_slow)) < 10 * kernel.timescale
        warnings.warn(
            f"{short.sum()} of {short.size} protocols have a fast ramp shorter than 10 kernel "
            "times: their updates underestimate the contrast (the kernel smooths the ramp).",
            stacklevel=2,
        )
    n = max(batch, 1)
    n_wraps = wraps_needed(kernel, np.min(np.asarray(shape.period)))
    updates, regimes = [], []
    starts = range(0, n, chunk)
    for start in tqdm(
        starts, desc="response curves", unit="chunk", disable=not progress or len(starts) < 2
    ):
        index = np.minimum(np.arange(start, start + chunk), n - 1)  # pad the last chunk
        g, s = jax.tree.map(lambda a, rows=index: a[rows], (nonlinearity, shape))
        update, regime = _curves(kernel, g, s, amplitudes, mean, n_grid, n_wraps)
        keep = min(chunk, n - start)
        updates.append(np.asarray(update)[:keep])
        regimes.append(np.asarray(regime)[:keep])
    update, regime = np.concatenate(updates), np.concatenate(regimes)
    period = np.broadcast_to(np.asarray(shape.period, dtype=float), (n,))
    data = {
        "dw": (
            ("protocol", "amplitude"),
            update,
            {
                "units": "current x time",
                "long_name": "update per cycle, integral of g(u) dt (the weight moves by "
                "-alpha dw)",
            },
        ),
        "regime": (
            ("protocol", "amplitude"),
            regime,
            {
                "units": "1",
                "long_name": "learning regime",
                "flag_values": np.arange(3, dtype=np.int8),
                "flag_meanings": " ".join(REGIMES),
            },
        ),
        "period": (("protocol",), period, {"units": "time", "long_name": "protocol period T"}),
    }
    if isinstance(shape, Sawtooth):
        data["tau_fast"] = (
            ("protocol",),
            np.asarray(shape.tau_fast),
            {"units": "time", "long_name": "fast ramp time tau_fast"},
        )
        data["tau_slow"] = (
            ("protocol",),
            np.asarray(shape.tau_slow),
            {"units": "time", "long_name": "slow ramp time tau_slow"},
        )
    ds = xr.Dataset(
        data,
        coords={
            "amplitude": (
                "amplitude",
                amplitudes,
                {"units": "current", "long_name": "contrast A = s_clamped - s_free"},
            )
        },
        attrs={
            "mean_current": float(mean),
            "kernel_timescale": float(kernel.timescale),
            "kernel_area": float(kernel.area),
        },
    )
    return ds if batch else ds.isel(protocol=0)


def learning_range(curves: xr.Dataset, amplitude_max) -> xr.Dataset:
    """A_min, intercept and learning range A_max/A_min from a continuous three-segment fit of
    dw/A_max against A/A_max (the paper's recipe): A_min is where the third segment starts,
    if its slope lies in (0.75, 1.25) (the contrastive regime, Delta ~ A); otherwise no
    learning range is found and A_min = A_max."""
    require_positive("amplitude_max", amplitude_max)
    x = curves.amplitude.values / amplitude_max
    y = np.atleast_2d(curves.dw.values) / amplitude_max
    fit = fit_three_segments(x, y)
    third_slope = np.asarray(fit.slopes[..., 2])
    found = (third_slope > 0.75) & (third_slope < 1.25)
    amplitude_min = np.where(found, np.asarray(fit.breakpoints[..., 1]), 1.0) * amplitude_max
    dims = curves.dw.dims[:-1]
    squeeze = (lambda a: a[0]) if not dims else (lambda a: a)  # noqa: E731
    variables = {
        "amplitude_min": (
            amplitude_min,
            "current",
            "A_min, start of the contrastive (third) segment",
        ),
        "amplitude_max": (
            np.full(amplitude_min.shape, float(amplitude_max)),
            "current",
            "A_max, onset of cancellation",
        ),
        "learning_range": (amplitude_max / amplitude_min, "1", "learning range A_max / A_min"),
        "offset": (
            np.asarray(fit.third_intercept) * amplitude_max,
            "current x time",
            "offset error: intercept of the contrastive segment",
        ),
        "contrastive_slope": (third_slope, "1", "slope of the third segment, d(dw)/dA"),
    }
    return curves.assign(
        {
            name: (dims, squeeze(value), {"units": units, "long_name": long_name})
            for name, (value, units, long_name) in variables.items()
        }
    )
