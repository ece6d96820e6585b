"""Plots shared by figures and experiments."""

import matplotlib.pyplot as plt

from .response import REGIMES

REGIME_COLOURS = {"no_update": "0.85", "contrastive": "#cfe8cf", "cancellation": "#f3d0d0"}


def response_panels(ds):
    """dw against A, one panel per protocol, with the regimes shaded and the ideal dw = A."""
    curves = (
        [ds]
        if "protocol" not in ds.dims
        else [ds.isel(protocol=i) for i in range(ds.sizes["protocol"])]
    )
    figure, axes = plt.subplots(
        1, len(curves), figsize=(3.2 * len(curves) + 0.6, 3.2), sharey=True, squeeze=False
    )
    for axis, curve in zip(axes[0], curves, strict=True):
        amplitude = curve.amplitude.values
        for code, name in enumerate(REGIMES):
            inside = curve.regime.values == code
            if inside.any():
                axis.axvspan(
                    amplitude[inside].min(),
                    amplitude[inside].max(),
                    color=REGIME_COLOURS[name],
                    label=name.replace("_", " "),
                )
        axis.plot(amplitude, curve.dw, "k", lw=1.2)
        axis.plot(amplitude, amplitude, "b:", lw=1, label="dw = A")
        title = (
            f"tau_s/tau_f = {float(curve.tau_slow / curve.tau_fast):g}"
            if "tau_fast" in curve
            else ""
        )
        axis.set(title=title, xlabel="contrast A = s_clamped - s_free")
    axes[0, 0].set_ylabel("update per cycle dw")
    axes[0, 0].legend(fontsize=7, frameon=False, loc="upper left")
    figure.tight_layout()
    return figure


def learning_curves(ds):
    """Loss (log scale) and, for classification, accuracy against epoch, train and test."""
    panels = [name for name in ("loss", "accuracy") if f"test_{name}" in ds]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for axis, name in zip(axes[0], panels, strict=True):
        for split, style in (("train", "-"), ("test", "--")):
            axis.plot(ds.epoch, ds[f"{split}_{name}"], "k" + style, label=split)
        axis.set(xlabel="epoch", ylabel=name, yscale="log" if name == "loss" else "linear")
        axis.legend(fontsize=7, frameon=False)
    figure.tight_layout()
    return figure
