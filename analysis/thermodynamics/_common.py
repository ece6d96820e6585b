"""Shared pieces of the thermodynamics package: validation of signal ensembles and rate
matrices, exact time integrals of a master equation, and dataset assembly."""

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import concrete
from synapse_dyn.io import describe
from synapse_dyn.synapses.markov import check_rate_matrix, check_reversible


def check_ensemble(probabilities: Float[ArrayLike, "... k"], name: str = "signal ensemble"):
    """Raise a ValueError unless every probability is finite and > 0 and each ensemble sums
    to 1 (to 1e-9), naming the offending entry. Skipped for traced values."""
    array = concrete(probabilities)
    if array is None:
        return
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of probabilities.")
    bad = np.argwhere(~(np.isfinite(array) & (array > 0)))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"{name} entry {list(index)} is {float(array[index])!r}: every signal value must have "
            "a "
            "probability > 0 (drop values that never occur)."
        )
    sums = array.sum(axis=-1)
    wrong = np.argwhere(np.abs(np.atleast_1d(sums) - 1.0) > 1e-9)
    if wrong.size:
        index = tuple(int(i) for i in wrong[0])
        total = float(np.atleast_1d(sums)[index])
        where = f" {list(index)}" if array.ndim > 1 else ""
        raise ValueError(
            f"{name}{where} sums to {total!r}, not 1: normalise the probabilities "
            "(divide by their sum)."
        )


def check_generators(matrices: Float[ArrayLike, "... n n"], name: str) -> None:
    """Valid, irreducible and reversible (both directions of every transition) rate matrices:
    a vectorised pass over the whole batch, then ``check_rate_matrix`` and
    ``check_reversible`` on the first offending matrix for the error message naming it;
    skipped for traced values."""
    array = concrete(matrices)
    if array is None:
        return
    if array.ndim < 3:
        check_rate_matrix(array, name)
        check_reversible(array, name)
        return
    n = array.shape[-1]
    flat = array.reshape(-1, n, n)
    off = flat * (1 - np.eye(n))
    with np.errstate(invalid="ignore"):
        scale = np.max(np.abs(flat), axis=-2)
        bad = (
            ~np.all(np.isfinite(flat), axis=(-2, -1))
            | np.any(off < 0, axis=(-2, -1))
            | np.any(np.abs(flat.sum(axis=-2)) > 1e-10 * np.maximum(scale, 1e-300), axis=-1)
            | np.any((off > 0) != (np.swapaxes(off, -1, -2) > 0), axis=(-2, -1))
        )
        reach = ((off > 0) | np.eye(n, dtype=bool)).astype(float)
        for _ in range(int(np.ceil(np.log2(max(n, 2))))):
            reach = np.minimum(reach @ reach, 1.0)
        bad |= ~np.all(reach > 0, axis=(-2, -1))
    if np.any(bad):
        index = np.unravel_index(int(np.argmax(bad)), array.shape[:-2])
        where = f"{name} {[int(i) for i in index]}"
        check_rate_matrix(array[index], where)
        check_reversible(array[index], where)


def expm(
    x: Float[Array, "... n n"], multiply=jnp.matmul, one: Float[Array, "... n n"] | None = None
) -> Float[Array, "... n n"]:
    """exp(x) by scaling and squaring: x / 2^s with norm <= 2 (the sum of the 1-norms of the
    leading blocks), a Taylor series of degree 24 (remainder < 2^25 / 25! ~ 2e-18, terms at
    most 2, so no cancellation), then s squarings in a loop of traced length. ``multiply`` and
    ``one`` give the algebra (default: matrices; the uncertainty module passes a truncated
    power-series ring). Written out because under vmap JAX's expm evaluates every Pade order
    and all of its max_squarings squarings; the accuracy is comparable (1e-13 on stiff
    ladders)."""
    one = jnp.eye(x.shape[-1]) if one is None else one
    norm = jnp.sum(jnp.max(jnp.sum(jnp.abs(x), axis=-2), axis=-1))
    squarings = jnp.maximum(jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-300) / 2.0)), 0.0)
    scaled = x / 2.0**squarings
    series = one
    for k in range(24, 0, -1):
        series = one + multiply(scaled, series) / k
    return jax.lax.fori_loop(0, squarings.astype(int), lambda _, e: multiply(e, e), series)


def occupation_integral(
    matrix: Float[Array, "n n"], p0: Float[Array, " n"], duration: Float[Array, ""]
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """(p(tau), int_0^tau p(t) dt) for dp/dt = M p, exactly, from one matrix exponential of
    the augmented generator [[M, p0], [0, 0]] (Van Loan): its top-right column is the
    integral, and exp(M tau) p0 follows as p0 + M times the integral."""
    n = matrix.shape[-1]
    augmented = jnp.zeros((n + 1, n + 1)).at[:n, :n].set(matrix).at[:n, n].set(p0)
    integral = expm(augmented * duration)[:n, n]
    return p0 + matrix @ integral, integral


def log_rate_ratio(matrix: Float[Array, "n n"]) -> Float[Array, "n n"]:
    """ln(M[i, j] / M[j, i]) on transitions with both directions, 0 elsewhere: the entropy
    (heat / kT) delivered to the medium by one jump j -> i (local detailed balance)."""
    both = (matrix > 0) & (matrix.T > 0) & ~jnp.eye(matrix.shape[-1], dtype=bool)
    return jnp.where(
        both, jnp.log(jnp.where(both, matrix, 1.0)) - jnp.log(jnp.where(both, matrix.T, 1.0)), 0.0
    )


def entropy(p: Float[Array, "... n"]) -> Float[Array, "..."]:
    """Shannon entropy -sum p ln p (nats) over the last axis, 0 ln 0 = 0."""
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


def dataset(
    variables: dict[str, tuple[np.ndarray, str, str]],
    batch: str | None,
    title: str,
    config: dict,
    coords: dict | None = None,
) -> xr.Dataset:
    """A described dataset of scalar-per-case variables: dims () or (batch,)."""
    data = {}
    for name, (value, units, long_name) in variables.items():
        value = np.asarray(value)
        dims = () if value.ndim == 0 else (batch,) * value.ndim
        data[name] = (dims, value, {"units": units, "long_name": long_name})
    ds = xr.Dataset(data, coords=coords or {})
    return describe(ds, title, config)
