"""Experiment files: a TOML table whose keys are the fields of one experiment kind.

``kind`` selects the experiment; every other key must be a field of that kind's
configuration (unknown keys are rejected with the list of valid ones). ``synapse-dyn run``
without a file runs the embedded default, ``DEFAULT``.
"""

import dataclasses
import tomllib
import typing

import numpy as np
import tomli_w

from synapse_dyn import protocols, synapses
from synapse_dyn._checks import Range, check_fields, check_name
from synapse_dyn.analysis import sweeps
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

    def __post_init__(self):
        check_name(self.name)
        check_fields(self, SYNAPSE_RANGES)

    def build(self):
        """(kernel, nonlinearity, shape) of the experiment."""
        memory: synapses.AbstractLinearMemory
        kernel: synapses.AbstractKernel
        if self.memory == "ecoli":
            memory = synapses.EColiCascade(self.tau_kernel, self.kernel_area)
            kernel = synapses.EColiKernel(self.kernel_area, 1.0 / self.tau_kernel)
        elif self.memory == "integral_feedback":
            # mypy counts the abstract parent's declared fields as arguments
            memory = synapses.IntegralFeedback(self.tau_kernel)  # type: ignore[call-arg]
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
        below = curves.sel(amplitude=slice(None, 0.75 * amplitude_max))
        if below.sizes["amplitude"] < 8:
            raise ValueError(
                f"only {below.sizes['amplitude']} of the n_amplitudes = {self.n_amplitudes} "
                f"contrasts lie below 0.75 A_max = {0.75 * amplitude_max:.3g}, too few (8) to fit "
                "the learning range; raise n_amplitudes or lower amplitude_stop."
            )
        fitted = learning_range(below, amplitude_max)
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

    def quick(self):
        """The same experiment at a small size (``run --quick``): at most 100 contrasts."""
        return dataclasses.replace(self, n_amplitudes=min(self.n_amplitudes, 100))


@dataclasses.dataclass(frozen=True)
class TrainExperiment(TrainConfig):
    """Train a network (any substrate) with an explicit rule; learning curves over epochs."""

    name: str = option("train", "run name; outputs go to <out>/<name>/")

    def __post_init__(self):
        check_name(self.name)
        super().__post_init__()

    def run(self, progress: bool = True, **checkpointing):
        """(dataset, figure, summary lines); ``checkpointing``: ``train``'s checkpoint,
        checkpoint_every and resume."""
        ds = train(self, progress=progress, **checkpointing)
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

    def quick(self):
        """The same experiment at a small size (``run --quick``): at most 2 epochs and, for the
        generated tasks, 64 training and 32 test samples."""
        n_train = min(self.n_train, 64)
        return dataclasses.replace(
            self,
            epochs=min(self.epochs, 2),
            n_train=n_train,
            n_test=min(self.n_test, 32),
            batch_size=min(self.batch_size, n_train),
        )


KINDS: dict[str, type] = {"synapse": SynapseExperiment, "train": TrainExperiment}

TIME = Range(0.0, 1e6, open_low=True)
SYNAPSE_RANGES = {
    "memory": ("ecoli", "integral_feedback"),
    "nonlinearity": ("dead_zone", "cubic", "identity"),
    "tau_kernel": TIME,
    "kernel_area": Range(-1e3, 1e3),
    "threshold": Range(0.0, 1e6),
    "tau_fast": TIME,
    "tau_slow": TIME,
    "mean_current": Range(-1e6, 1e6),
    "amplitude_stop": Range(0.0, 1e6, open_low=True),
    "n_amplitudes": Range(16, 100_000, integer=True),
}
"""The allowed values of every key of a synapse experiment, checked by one function
(``_checks.check_fields``) for every entry point: files, sweeps, the Python API."""

DEFAULT = 'kind = "synapse"\nname = "tcl-synapse"\n'


def _load(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{source} is not valid TOML: {error}") from None


def parse(text: str, source: str = "experiment", default_name: str | None = None):
    """The experiment configured by a TOML text (named ``default_name`` when it sets no
    ``name``, e.g. the file's name). One experiment: a sweep file is refused with the command
    that runs it."""
    table = _load(text, source)
    if "sweep" in table:
        raise ValueError(
            f"{source} has a [sweep] table: run the sweep with 'synapse-dyn sweep {source}'."
        )
    return from_table(_named(table, default_name), source)


def _named(table: dict, default_name: str | None) -> dict:
    if default_name is not None and "name" not in table:
        table = {**table, "name": default_name}
    return table


def to_toml(config) -> str:
    """The experiment file of a configuration (written by a TOML library, so any name or
    value round-trips through ``parse``)."""
    kind = next(kind for kind, config_type in KINDS.items() if type(config) is config_type)
    return tomli_w.dumps({"kind": kind, **dataclasses.asdict(config)})


def from_table(table: dict, source: str = "experiment"):
    """The experiment configured by a TOML table (``kind`` plus that kind's fields)."""
    table = dict(table)
    kind = table.pop("kind", None)
    if not isinstance(kind, str) or kind not in KINDS:
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
        if hints[key] is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        values[key] = value
    try:  # the configuration validates every key itself, whatever the entry point
        return config_type(**values)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{source}: {error}") from None


def describe_kind(kind: str) -> str:
    """The documented keys of an experiment kind."""
    config_type = KINDS[kind]
    lines = [f"kind = {kind!r}: {(config_type.__doc__ or '').split(chr(10))[0]}"]
    for f in dataclasses.fields(config_type):
        factory = f.default_factory
        default = f.default if factory is dataclasses.MISSING else factory()
        lines.append(f"  {f.name} = {default!r}  # {f.metadata['doc']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Sweep files


_SWEEP_KEYS = ("chunk", "grid", "points", "random")
_DISTRIBUTIONS = {
    "uniform": sweeps.Uniform,
    "log_uniform": sweeps.LogUniform,
    "multiples": sweeps.Multiples,
    "choice": sweeps.Choice,
}


def _grid_axis(source: str, name: str, spec):
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"start", "stop", "num", "log"})
        missing = sorted({"start", "stop", "num"} - set(spec))
        if unknown or missing:
            raise ValueError(
                f"{source}: grid axis {name!r} must be a list or {{start, stop, num, log}}; "
                f"unknown {unknown}, missing {missing}."
            )
        check_fields(_GridAxis(spec["start"], spec["stop"], spec["num"]), _GRID_AXIS)
        log = spec.get("log", False)
        if not isinstance(log, bool) or (log and not (spec["start"] > 0 and spec["stop"] > 0)):
            raise ValueError(
                f"{source}: grid axis {name!r}: log must be true or false, and a log axis needs "
                f"start > 0 and stop > 0; got {spec!r}."
            )
        space = np.geomspace if log else np.linspace
        return space(spec["start"], spec["stop"], spec["num"])
    return spec


class _GridAxis(typing.NamedTuple):
    start: float
    stop: float
    num: int


_GRID_AXIS = {
    "start": Range(-1e12, 1e12),
    "stop": Range(-1e12, 1e12),
    "num": Range(1, 1_000_000, integer=True),
}


def _distribution(source: str, name: str, spec):
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in _DISTRIBUTIONS:
        raise ValueError(
            f"{source}: random axis {name!r} must be one of {{uniform = [low, high]}}, "
            "{log_uniform = [low, high]}, {multiples = [step, low, high]}, {choice = [values]}; "
            f"got {spec!r}."
        )
    [(kind, args)] = spec.items()
    count = {"uniform": 2, "log_uniform": 2, "multiples": 3}.get(kind)
    numbers = isinstance(args, list) and all(
        isinstance(a, int | float) and not isinstance(a, bool) and abs(a) < 1e12 for a in args
    )
    if not numbers or not args or (count is not None and len(args) != count):
        raise ValueError(
            f"{source}: random axis {name!r}: {kind} takes a list of "
            f"{count or 'one or more'} finite numbers (|x| < 1e12), got {args!r}."
        )
    if kind in ("uniform", "log_uniform", "multiples") and not args[-2] < args[-1]:
        raise ValueError(f"{source}: random axis {name!r}: {kind} needs low < high, got {args!r}.")
    if kind == "log_uniform" and not args[0] > 0:
        raise ValueError(
            f"{source}: random axis {name!r}: log_uniform needs low > 0, got {args!r}."
        )
    if kind == "multiples" and not all(isinstance(a, int) for a in args[1:]):
        raise ValueError(
            f"{source}: random axis {name!r}: multiples = [step, low, high] needs integer low "
            f"and high, got {args!r}."
        )
    return _DISTRIBUTIONS[kind](tuple(args)) if kind == "choice" else _DISTRIBUTIONS[kind](*args)


def parse_sweep(text: str, source: str = "sweep file", default_name: str | None = None):
    """(experiment, sweep, chunk) of an experiment file with a ``[sweep]`` table holding one of
    ``grid`` (axis = list or {start, stop, num, log}), ``points`` (equal-length lists) or
    ``random`` (n, seed, then axis = {uniform|log_uniform|multiples|choice = ...}), and an
    optional ``chunk`` (points per chunk); ``default_name`` as for ``parse``."""
    table = _named(_load(text, source), default_name)
    spec = table.pop("sweep", None)
    if not isinstance(spec, dict):
        raise ValueError(
            f"{source} has no [sweep] table; add [sweep.grid], [sweep.points] or [sweep.random]."
        )
    config = from_table(table, source)
    sweepable = {SynapseExperiment: sweeps.SynapseResponse}
    if type(config) not in sweepable:
        raise ValueError(
            f"{source}: experiments of kind {type(config).__name__} cannot be swept yet."
        )
    unknown = sorted(set(spec) - set(_SWEEP_KEYS))
    kinds = [key for key in ("grid", "points", "random") if key in spec]
    if unknown or len(kinds) != 1:
        raise ValueError(
            f"{source}: [sweep] takes exactly one of grid, points, random and optionally chunk; "
            f"got {sorted(spec)}."
        )
    [kind] = kinds
    axes = dict(spec[kind])
    sweep: sweeps.Grid | sweeps.Points
    if kind == "grid":
        sweep = sweeps.Grid(
            **{name: _grid_axis(source, name, values) for name, values in axes.items()}
        )
    elif kind == "points":
        sweep = sweeps.Points(**axes)
    else:
        n, seed = axes.pop("n", None), axes.pop("seed", None)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, seed)) or not (
            1 <= n <= 10_000_000 and 0 <= seed < 2**63
        ):
            raise ValueError(
                f"{source}: [sweep.random] needs integers n in [1, 10000000] and seed >= 0, "
                f"got n = {n!r}, seed = {seed!r}."
            )
        sweep = sweeps.Draws(
            n, seed, **{name: _distribution(source, name, d) for name, d in axes.items()}
        )
    if int(np.prod(sweep.shape, dtype=float)) > 10_000_000:
        raise ValueError(
            f"{source}: the sweep has {' x '.join(map(str, sweep.shape))} points, more than "
            "10000000; sweep fewer values or split the sweep."
        )
    chunk = spec.get("chunk")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"{source}: [sweep] chunk must be a positive integer, got {chunk!r}.")
    return sweepable[type(config)](config), sweep, chunk
