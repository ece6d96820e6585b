"""Experiment files: a TOML table whose keys are the fields of one experiment kind.

``kind`` selects the experiment; every other key must be a field of that kind's
configuration (unknown keys are rejected with the list of valid ones). ``synapse-dyn run``
without a file runs the embedded default, ``DEFAULT``.
"""

import dataclasses
import tomllib
import typing

import numpy as np

from synapse_dyn import protocols, synapses
from synapse_dyn.analysis.plots import learning_curves, response_panels
from synapse_dyn.analysis.response import learning_range, response_curves
from synapse_dyn.io import describe
from synapse_dyn.training import TrainConfig, train


def option(default, doc: str):
    """A configuration field with its documentation."""
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass(frozen=True)
class SynapseExperiment:
    """One TCL synapse driven by sawtooth currents of growing contrast A: the update per
    cycle dw(A), its regimes and the learning range A_max/A_min (paper Fig. 4B)."""

    name: str = option("tcl-synapse", "run name; outputs go to <out>/<name>/")
    memory: str = option(
        "ecoli", "memory model: 'ecoli' (three-stage cascade) or 'integral_feedback'"
    )
    tau_kernel: float = option(
        0.05, "kernel time tau_K (1/B for ecoli, tau_I for integral_feedback)"
    )
    kernel_area: float = option(0.0, "kernel area I (ecoli; 0 = perfect adaptation)")
    nonlinearity: str = option("dead_zone", "g: 'dead_zone', 'cubic' or 'identity'")
    threshold: float = option(100.0 / 9.0, "threshold theta_g of g")
    tau_fast: float = option(1.0, "fast ramp time, free -> clamped")
    tau_slow: float = option(9.0, "slow ramp time, clamped -> free")
    mean_current: float = option(0.0, "background current s_bar")
    amplitude_stop: float = option(125.0, "largest contrast A of the sweep (exclusive)")
    n_amplitudes: int = option(500, "number of contrasts in the sweep")

    def build(self):
        """(kernel, nonlinearity, shape) of the experiment."""
        if self.memory == "ecoli":
            memory = synapses.EColiCascade(self.tau_kernel, self.kernel_area)
            kernel = synapses.EColiKernel(self.kernel_area, 1.0 / self.tau_kernel)
        elif self.memory == "integral_feedback":
            memory = synapses.IntegralFeedback(self.tau_kernel)
            kernel = memory.kernel()
        else:
            raise ValueError(f"memory must be 'ecoli' or 'integral_feedback', got {self.memory!r}.")
        nonlinearities = {
            "dead_zone": lambda: synapses.DeadZone(self.threshold),
            "cubic": lambda: synapses.Cubic(self.threshold),
            "identity": synapses.Identity,
        }
        if self.nonlinearity not in nonlinearities:
            raise ValueError(
                f"nonlinearity must be one of {sorted(nonlinearities)}, got {self.nonlinearity!r}."
            )
        shape = protocols.Sawtooth(self.tau_fast, self.tau_slow, free=-0.5, clamped=0.5)
        return kernel, nonlinearities[self.nonlinearity](), shape

    def run(self, progress: bool = True):
        """(dataset, figure, summary lines)."""
        kernel, g, shape = self.build()
        amplitudes = np.linspace(0, self.amplitude_stop, self.n_amplitudes, endpoint=False)
        curves = response_curves(kernel, g, shape, amplitudes, self.mean_current, progress=progress)
        cancelling = curves.amplitude.values[curves.regime.values == 2]
        amplitude_max = float(cancelling.min()) if cancelling.size else self.amplitude_stop
        fitted = learning_range(
            curves.sel(amplitude=slice(None, 0.75 * amplitude_max)), amplitude_max
        )
        ds = curves.assign(
            {
                name: fitted[name]
                for name in (
                    "amplitude_min",
                    "amplitude_max",
                    "learning_range",
                    "offset",
                    "contrastive_slope",
                )
            }
        )
        ds = describe(ds, "TCL synapse response to sawtooth contrasts", dataclasses.asdict(self))
        summary = [
            f"contrastive regime: A in [{float(ds.amplitude_min):.3g}, {amplitude_max:.3g}), "
            f"slope {float(ds.contrastive_slope):.3f} (ideal 1)",
            f"learning range A_max/A_min = {float(ds.learning_range):.3g} "
            f"(bound tau_slow/tau_fast = {self.tau_slow / self.tau_fast:.3g})",
            f"offset error {float(ds.offset):.3g}",
        ]
        return ds, response_panels(curves), summary


@dataclasses.dataclass(frozen=True)
class TrainExperiment(TrainConfig):
    """Train a network (any substrate) with an explicit rule; learning curves over epochs."""

    name: str = option("train", "run name; outputs go to <out>/<name>/")

    def run(self, progress: bool = True):
        """(dataset, figure, summary lines)."""
        ds = train(self, progress=progress)
        final = ds.isel(epoch=-1)
        summary = [
            f"{self.substrate} / {self.rule} ({self.variant}) on {self.task}, {self.epochs} epochs",
            f"test loss {float(ds.test_loss[0]):.4g} -> {float(final.test_loss):.4g}",
        ]
        if "test_accuracy" in ds:
            summary.append(
                f"test accuracy {float(ds.test_accuracy[0]):.3f} -> "
                f"{float(final.test_accuracy):.3f}"
            )
        return ds, learning_curves(ds), summary


KINDS: dict[str, type] = {"synapse": SynapseExperiment, "train": TrainExperiment}

DEFAULT = 'kind = "synapse"\nname = "tcl-synapse"\n'


def parse(text: str, source: str = "experiment"):
    """The experiment configured by a TOML text."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{source} is not valid TOML: {error}") from None
    kind = table.pop("kind", None)
    if kind not in KINDS:
        raise ValueError(f"{source}: 'kind' must be one of {sorted(KINDS)}, got {kind!r}.")
    config_type = KINDS[kind]
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown} for kind {kind!r}; valid keys: {sorted(fields)}."
        )
    hints = typing.get_type_hints(config_type)
    values = {}
    for key, value in table.items():
        expected = hints[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(expected, type) and not isinstance(value, expected):
            raise ValueError(f"{source}: key {key!r} must be {expected.__name__}, got {value!r}.")
        values[key] = value
    return config_type(**values)


def describe_kind(kind: str) -> str:
    """The documented keys of an experiment kind."""
    config_type = KINDS[kind]
    lines = [f"kind = {kind!r}: {config_type.__doc__.split(chr(10))[0]}"]
    for f in dataclasses.fields(config_type):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        lines.append(f"  {f.name} = {default!r}  # {f.metadata['doc']}")
    return "\n".join(lines)
