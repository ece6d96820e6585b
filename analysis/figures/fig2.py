"""Fig. 2: the TCL mechanism over one cycle. A sawtooth current s(t) (fast ramp to the clamped
value, slow ramp back) is filtered by the bilobed kernel K into u = K * s, a tall positive
pulse during the fast ramp and a shallow negative plateau during the slow one; the dead zone
g keeps only the pulse, so the weight steps by ~ s_clamped - s_free per cycle. Two controls:
the time-reversed sawtooth (opposite update) and no nonlinearity (no net update)."""

import jax
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from synapse_dyn.io import describe
from synapse_dyn.synapses import DeadZone, Identity, periodic_response

from ._common import TAU_K, kernel, unit_sawtooth

AMPLITUDE = 50.0
TAU_FAST, TAU_SLOW = 1.0, 9.0
THRESHOLD = 100.0 / TAU_SLOW
CASES = ("sawtooth", "reversed", "no_nonlinearity")


def compute(quick: bool = False, progress: bool = True):
    n_grid = 2**11 if quick else 2**14
    memory_kernel = kernel()
    traces = {name: [] for name in ("current", "memory_output", "velocity", "cumulative_update")}
    for case in CASES:
        shape = unit_sawtooth(TAU_FAST, TAU_SLOW, reverse=case == "reversed")
        g = Identity() if case == "no_nonlinearity" else DeadZone(THRESHOLD)
        t, v = periodic_response(memory_kernel, shape, n_grid)
        u = AMPLITUDE * v
        velocity = g(u)
        dt = float(t[1] - t[0])
        traces["current"].append(AMPLITUDE * jax.vmap(shape)(t))
        traces["memory_output"].append(u)
        traces["velocity"].append(velocity)
        traces["cumulative_update"].append(dt * np.cumsum(np.asarray(velocity)))
    kernel_time = np.linspace(0, 0.5, 501)
    attrs = {
        "current": ("current", "synaptic current s(t)"),
        "memory_output": ("current / time", "memory output u = K * s"),
        "velocity": ("current / time", "nonlinearity output g(u) (weight velocity / -alpha)"),
        "cumulative_update": ("current", "cumulative update integral_0^t g(u) dt'"),
    }
    data = {
        name: (
            ("case", "time"),
            np.stack([np.asarray(x) for x in values]),
            dict(zip(("units", "long_name"), attrs[name], strict=True)),
        )
        for name, values in traces.items()
    }
    data["kernel"] = (
        ("kernel_time",),
        np.asarray(memory_kernel(kernel_time)),
        {"units": "1 / time^2", "long_name": "memory kernel K(t)"},
    )
    data["dw"] = (
        ("case",),
        data["cumulative_update"][1][:, -1],
        {"units": "current", "long_name": "update over the cycle"},
    )
    ds = xr.Dataset(
        data,
        coords={
            "case": ("case", list(CASES), {"units": "1", "long_name": "protocol and nonlinearity"}),
            "time": (
                "time",
                np.asarray(t),
                {"units": "time", "long_name": "time within the cycle"},
            ),
            "kernel_time": (
                "kernel_time",
                kernel_time,
                {"units": "time", "long_name": "kernel lag"},
            ),
        },
        attrs={
            "amplitude": AMPLITUDE,
            "threshold": THRESHOLD,
            "tau_fast": TAU_FAST,
            "tau_slow": TAU_SLOW,
        },
    )
    config = {
        "figure": "fig2",
        "amplitude": AMPLITUDE,
        "tau_fast": TAU_FAST,
        "tau_slow": TAU_SLOW,
        "threshold": THRESHOLD,
        "tau_kernel": TAU_K,
    }
    return describe(ds, "Fig. 2: mechanism traces over one cycle", config)


def plot(ds):
    rows = ("current", "memory_output", "velocity", "cumulative_update")
    figure, axes = plt.subplots(len(rows) + 1, 1, figsize=(6, 8), sharex=False)
    axes[0].plot(ds.kernel_time, ds.kernel, "k")
    axes[0].set(xlabel="lag (time)", ylabel="K(t)", title="memory kernel")
    styles = {"sawtooth": "k-", "reversed": "r--", "no_nonlinearity": "b:"}
    labels = ("s(t)", "u = K * s", "g(u)", "integral g(u) dt")
    for axis, name, label in zip(axes[1:], rows, labels, strict=True):
        for case in ds.case.values:
            axis.plot(
                ds.time, ds[name].sel(case=case), styles[case], lw=1.2, label=case.replace("_", " ")
            )
        axis.set_ylabel(label)
    axes[2].axhline(ds.attrs["threshold"], color="0.6", lw=0.8)
    axes[2].axhline(-ds.attrs["threshold"], color="0.6", lw=0.8)
    axes[-1].set_xlabel("time within the cycle")
    axes[1].legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
