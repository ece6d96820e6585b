"""What to sweep: grids (products of named axes), explicit points and seeded random draws,
and the validation of every point before any work starts."""

import typing

import numpy as np

from .experiment import AbstractExperiment


def _values(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim > 1:
        raise ValueError(f"sweep axis {name!r} must be a list of numbers, got shape {array.shape}.")
    array = np.atleast_1d(array)
    if array.size == 0:
        raise ValueError(f"sweep axis {name!r} is empty; give it at least one value.")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"sweep axis {name!r} has a non-finite value {float(array[bad[0]])!r} "
            f"at index {bad[0]}."
        )
    return array


class Grid:
    """The product of named axes (the last varies fastest); the dataset's dims are the axes,
    with their values as coordinates."""

    def __init__(self, **axes):
        if not axes:
            raise ValueError("a Grid needs at least one axis, e.g. Grid(tau_fast=[0.5, 1.0]).")
        self.axes = {name: _values(name, values) for name, values in axes.items()}
        self.dims = tuple(self.axes)
        self.shape = tuple(v.size for v in self.axes.values())

    def points(self) -> dict[str, np.ndarray]:
        mesh = np.meshgrid(*self.axes.values(), indexing="ij")
        return {name: m.ravel() for name, m in zip(self.axes, mesh, strict=True)}

    def spec(self) -> dict:
        return {"grid": {k: v.tolist() for k, v in self.axes.items()}}


class Points:
    """Explicit points along one dimension ``dim``: equal-length lists of parameter values,
    stored as data variables along ``dim``."""

    def __init__(self, dim: str = "point", **values):
        if not values:
            raise ValueError(
                "Points needs at least one parameter, e.g. Points(tau_fast=[0.5, 1.0])."
            )
        self.values = {name: _values(name, v) for name, v in values.items()}
        sizes = {name: v.size for name, v in self.values.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"Points parameters must have equal lengths, got {sizes}.")
        self.dims = (dim,)
        self.shape = (next(iter(sizes.values())),)

    def points(self) -> dict[str, np.ndarray]:
        return dict(self.values)

    def spec(self) -> dict:
        return {"points": list(self.values), "dim": self.dims[0], "n": self.shape[0]}


class Uniform(typing.NamedTuple):
    """Uniform on [low, high)."""

    low: float
    high: float

    def draw(self, rng, n):
        return rng.uniform(self.low, self.high, n)


class LogUniform(typing.NamedTuple):
    """Log-uniform on [low, high), both > 0."""

    low: float
    high: float

    def draw(self, rng, n):
        return np.exp(rng.uniform(np.log(self.low), np.log(self.high), n))


class Multiples(typing.NamedTuple):
    """``step`` times a uniform random integer in [low, high)."""

    step: float
    low: int
    high: int

    def draw(self, rng, n):
        return rng.integers(self.low, self.high, n) * self.step


class Choice(typing.NamedTuple):
    """A uniform random pick among ``values``."""

    values: tuple

    def draw(self, rng, n):
        return rng.choice(np.asarray(self.values, dtype=float), n)


def Draws(n: int, seed: int, dim: str = "draw", **distributions) -> Points:
    """``n`` random points: each parameter drawn from its distribution (``Uniform``,
    ``LogUniform``, ``Multiples``, ``Choice``) in the given order, from one generator
    seeded with ``seed``."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"Draws needs a number of points n >= 1, got {n!r}.")
    rng = np.random.default_rng(seed)
    for name, distribution in distributions.items():
        if not hasattr(distribution, "draw"):
            raise ValueError(
                f"sweep axis {name!r}: {distribution!r} is not a distribution; "
                "use Uniform, LogUniform, Multiples or Choice."
            )
    return Points(dim, **{name: d.draw(rng, n) for name, d in distributions.items()})


def _describe_point(points: dict[str, np.ndarray], index: int) -> str:
    return ", ".join(f"{name}={float(values[index])!r}" for name, values in points.items())


def validate(experiment: AbstractExperiment, sweep) -> dict[str, np.ndarray]:
    """The sweep's points as flat arrays, after checking every name and value: raises
    ValueError naming an unknown parameter, or the first invalid point and why."""
    points = sweep.points()
    known = experiment.parameters()
    unknown = [name for name in points if name not in known]
    if unknown:
        raise ValueError(
            f"unknown sweep parameter(s) {unknown}; "
            f"the experiment's parameters are {sorted(known)}."
        )
    points = {name: np.asarray(v, dtype=float) for name, v in points.items()}
    n = len(next(iter(points.values())))

    def fails(index) -> Exception | None:
        try:
            experiment.check({name: v[index] for name, v in points.items()})
        except (ValueError, TypeError) as error:
            return error
        return None

    if fails(slice(None)) is None:
        return points
    low, high = 0, n  # the first invalid point lies in [low, high): bisect on prefixes
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if fails(slice(middle)) else (middle, high)
    raise ValueError(
        f"sweep point {low} of {n} ({_describe_point(points, low)}) is invalid: {fails(low)}"
    )
