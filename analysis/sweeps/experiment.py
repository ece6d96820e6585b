"""What a sweep evaluates: an experiment of named scalar parameters, batched with
``jax.vmap``, and its outputs (units, long names)."""

import abc
import dataclasses
import typing

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from synapse_dyn.synapses.cycle import wraps_needed

from ..response import REGIMES, _curves

if typing.TYPE_CHECKING:  # the application layer; imported for annotations only
    from synapse_dyn.experiments import SynapseExperiment


class Parameter(typing.NamedTuple):
    """A sweepable scalar: its units and long name."""

    units: str
    long_name: str


class Output(typing.NamedTuple):
    """A result variable per point: its dims beyond the sweep's, dtype, units and long name."""

    dims: tuple[str, ...]
    dtype: str
    units: str
    long_name: str
    attrs: dict = {}


class AbstractExperiment(eqx.Module):
    """A computation of named scalar parameters that can be batched over points.

    ``__call__`` receives a dict of swept parameter arrays with a leading point axis and
    returns a dict of output arrays with the same leading axis; it runs under one
    ``eqx.filter_jit`` per process, so array fields are traced and other fields are static.
    """

    @abc.abstractmethod
    def parameters(self) -> dict[str, Parameter]:
        """The parameters a sweep may vary."""

    @abc.abstractmethod
    def outputs(self) -> dict[str, Output]:
        """The variables computed for every point."""

    @abc.abstractmethod
    def coords(self) -> dict[str, tuple]:
        """Coordinates of the outputs' own dims: name -> (values, attrs)."""

    @abc.abstractmethod
    def check(self, points: dict[str, np.ndarray]) -> None:
        """Raise ValueError if any point is invalid (vectorised over the points)."""

    @abc.abstractmethod
    def prepare(self, points: dict[str, np.ndarray]) -> "AbstractExperiment":
        """This experiment with the settings that must hold for the whole sweep fixed (e.g.
        static array sizes), so that every chunk runs the same compiled function."""

    @abc.abstractmethod
    def __call__(self, points: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """Outputs for a batch of points."""

    @abc.abstractmethod
    def finish(self, ds: xr.Dataset) -> xr.Dataset:
        """The assembled dataset with experiment-level attributes added."""

    @abc.abstractmethod
    def config(self) -> dict:
        """The experiment's configuration, for provenance and resume checks."""

    @abc.abstractmethod
    def bytes_per_point(self) -> int:
        """Rough working memory of one point (chooses the default chunk size)."""


_SYNAPSE_PARAMETERS = {
    "tau_kernel": ("time", "kernel time tau_K"),
    "kernel_area": ("1", "kernel area I"),
    "threshold": ("current", "threshold theta_g of g"),
    "tau_fast": ("time", "fast ramp time tau_fast"),
    "tau_slow": ("time", "slow ramp time tau_slow"),
    "mean_current": ("current", "background current s_bar"),
}


class SynapseResponse(AbstractExperiment):
    """Response curves of one TCL synapse (``SynapseExperiment``): the update per
    cycle dw and the regime over the configured contrasts, for every point; the swept
    parameters replace the configuration's float fields."""

    config_: "SynapseExperiment"
    amplitudes: jax.Array
    fixed: dict[str, jax.Array]
    n_grid: int = 2**15
    n_wraps: int | None = None

    def __init__(
        self,
        config: "SynapseExperiment",
        n_grid: int = 2**15,
        n_wraps=None,
        swept=(),
    ):
        self.config_ = config
        self.amplitudes = jnp.asarray(
            np.linspace(0, config.amplitude_stop, config.n_amplitudes, endpoint=False)
        )
        self.fixed = {
            k: jnp.asarray(float(getattr(config, k))) for k in _SYNAPSE_PARAMETERS if k not in swept
        }
        self.n_grid = n_grid
        self.n_wraps = n_wraps

    def parameters(self):
        return {name: Parameter(*spec) for name, spec in _SYNAPSE_PARAMETERS.items()}

    def outputs(self):
        return {
            "dw": Output(
                ("amplitude",),
                "float64",
                "current x time",
                "update per cycle, integral of g(u) dt (the weight moves by -alpha dw)",
            ),
            "regime": Output(
                ("amplitude",),
                "int8",
                "1",
                "learning regime",
                {"flag_values": np.arange(3, dtype=np.int8), "flag_meanings": " ".join(REGIMES)},
            ),
            "period": Output((), "float64", "time", "protocol period T"),
        }

    def coords(self):
        return {
            "amplitude": (
                np.asarray(self.amplitudes),
                {"units": "current", "long_name": "contrast A = s_clamped - s_free"},
            )
        }

    def _build(self, points):
        return dataclasses.replace(self.config_, **points).build()

    def check(self, points):
        self._build({k: np.asarray(v, dtype=float) for k, v in points.items()})

    def prepare(self, points):
        kernel, _, shape = self._build({k: np.asarray(v, dtype=float) for k, v in points.items()})
        swept = tuple(points)
        return SynapseResponse(self.config_, self.n_grid, wraps_needed(kernel, shape.period), swept)

    def __call__(self, points):
        def one(point):
            values = {**self.fixed, **point}
            kernel, g, shape = self._build(values)
            g, shape = (jax.tree.map(lambda a: jnp.asarray(a)[None], tree) for tree in (g, shape))
            mean = values["mean_current"]
            update, regime = _curves(
                kernel, g, shape, self.amplitudes, mean, self.n_grid, self.n_wraps
            )
            return {"dw": update[0], "regime": regime[0], "period": shape.period[0]}

        return jax.vmap(one)(points)

    def finish(self, ds):
        names = {
            "mean_current": "mean_current",
            "tau_kernel": "kernel_timescale",
            "kernel_area": "kernel_area",
        }
        return ds.assign_attrs(
            {attr: float(self.fixed[k]) for k, attr in names.items() if k in self.fixed}
        )

    def config(self):
        return {**dataclasses.asdict(self.config_), "n_grid": self.n_grid}

    def bytes_per_point(self):
        # XLA's working set is about (1 + 2 n_wraps) n_grid doubles per point (its memory
        # analysis at n_grid = 2^15: 1.3 MB for 2 wraps, 6.1 MB for 11); keep a margin
        wraps = self.n_wraps or 1
        return (4 + 2 * wraps) * self.n_grid * 8 + 4 * self.amplitudes.size * 8
