"""Python-time validation: every bad input gets a ValueError naming the argument, its value,
the allowed range and the fix. Failures found while a compiled program runs
are reported by ``synapse_dyn._runtime_checks``."""

import os
import typing
from collections.abc import Mapping

import jax
import numpy as np


def concrete(value):
    """``value`` as a float NumPy array, or None when it is a JAX tracer (inside jit/vmap,
    where validation is left to runtime checks)."""
    try:
        return np.asarray(value, dtype=float)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _describe(value) -> str:
    array = np.asarray(value)
    if array.ndim == 0:
        return repr(array.item())
    return f"array of shape {array.shape} (min {array.min()!r}, max {array.max()!r})"


def require_finite(name: str, value) -> None:
    """Raise unless every element of ``value`` is finite."""
    array = concrete(value)
    if array is not None and not np.all(np.isfinite(array)):
        bad = np.flatnonzero(~np.isfinite(array.ravel()))
        raise ValueError(
            f"{name} must be finite, but {bad.size} element(s) are NaN or infinite "
            f"(first at flat index {bad[0]}); remove or replace them."
        )


def require_positive(name: str, value, *, allow_zero: bool = False, allow_inf: bool = False):
    """Raise unless every element of ``value`` is > 0 (or >= 0 with ``allow_zero``)."""
    array = concrete(value)
    if array is None:
        return
    if np.any(np.isnan(array)) or (not allow_inf and np.any(np.isinf(array))):
        raise ValueError(f"{name} must be a finite number, got {_describe(value)}.")
    ok = array >= 0 if allow_zero else array > 0
    if not np.all(ok):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {_describe(value)}; pass a value {bound}.")


def require_in_range(name: str, value, low: float, high: float, *, closed=(True, True)) -> None:
    """Raise unless ``low <= value <= high`` elementwise (open ends per ``closed``)."""
    array = concrete(value)
    if array is None:
        return
    above = array >= low if closed[0] else array > low
    below = array <= high if closed[1] else array < high
    if np.any(np.isnan(array)) or not np.all(above & below):
        left = "[" if closed[0] else "("
        right = "]" if closed[1] else ")"
        raise ValueError(f"{name} must lie in {left}{low}, {high}{right}, got {_describe(value)}.")


def require_x64(what: str) -> None:
    """Raise unless JAX computes in 64-bit floats (``what`` names the computation needing them)."""
    if not jax.config.read("jax_enable_x64"):
        raise RuntimeError(
            f"{what} needs 64-bit floats, but JAX is in 32-bit mode; call "
            'jax.config.update("jax_enable_x64", True) at the start of your program.'
        )


def require_nonempty(name: str, value) -> None:
    """Raise if ``value`` has no elements."""
    if np.size(value) == 0:
        raise ValueError(f"{name} is empty; pass at least one value.")


MODERATE = 1e100  # products and sums of two parameters of this size stay finite in float64


def require_moderate(name: str, tree) -> None:
    """Raise unless every floating-point parameter in the pytree ``tree`` (e.g. a module) is
    finite with magnitude below 1e100, so that a run fails at once instead of after many steps
    (a learning rate of 1e300 or inf, an amplitude of 1e308, a NaN scale). A time scale
    (a field named ``*_time``) may be +inf: an absent process (e.g. no leak)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.result_type(leaf)
        array = concrete(leaf) if np.issubdtype(dtype, np.inexact) else None
        if array is None or array.size == 0:
            continue
        if jax.tree_util.keystr(path).endswith("_time"):
            array = np.where(array == np.inf, 0.0, array)
        if not np.all(np.isfinite(array)) or np.max(np.abs(array)) >= MODERATE:
            raise ValueError(
                f"{name}{jax.tree_util.keystr(path)} must be finite with magnitude below "
                f"{MODERATE:g}, got {_describe(array)}; choose a value in that range."
            )


class Range(typing.NamedTuple):
    """The allowed values of a configuration field: [low, high] (``open_low``: (low, high]),
    integers only with ``integer``."""

    low: float
    high: float
    open_low: bool = False
    integer: bool = False

    def __str__(self) -> str:
        kind = "an integer" if self.integer else "a number"
        return f"{kind} in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}]"


def _is_number(value, integer: bool) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    if integer:
        return isinstance(value, int | np.integer)
    if isinstance(value, int | float | np.integer | np.floating):
        return True
    dtype = value.dtype if isinstance(value, np.ndarray | jax.Array) else None
    return dtype is not None and np.issubdtype(dtype, np.number)  # swept (or traced) values


def check_fields(config, ranges: Mapping[str, "Range | tuple | type"]) -> None:
    """Validate the fields of a configuration (a dataclass, fields possibly arrays of swept
    values) against ``ranges``: a ``Range``, a tuple of allowed strings, or a type. Raises a
    one-line TypeError/ValueError naming the field, the value, what is allowed and the fix."""
    for name, allowed in ranges.items():
        value = getattr(config, name)
        if isinstance(allowed, tuple) and not isinstance(allowed, Range):
            if not isinstance(value, str) or value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}.")
        elif isinstance(allowed, type):
            if not isinstance(value, allowed) or isinstance(value, bool) != (allowed is bool):
                raise TypeError(f"{name} must be a {allowed.__name__}, got {value!r}.")
        elif not _is_number(value, allowed.integer):
            raise TypeError(f"{name} must be {allowed}, got {value!r}; pass such a number.")
        elif (array := concrete(value)) is not None:  # traced values are checked by now
            above = array > allowed.low if allowed.open_low else array >= allowed.low
            if not np.all(above & (array <= allowed.high)):  # False for NaN
                raise ValueError(
                    f"{name} must be {allowed}, got {_describe(value)}; pass a value in that range."
                )


def check_name(name) -> None:
    """Raise unless ``name`` is a plain file name (a run's output folder inside --out): no
    path separators, no '.'/'..' or leading dot, no control characters, at most 100 long."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}.")
    bad = (
        not name
        or len(name) > 100
        or name.startswith(".")
        or any(c in name for c in '/\\:*?"<>|')
        or not name.isprintable()
        or name != name.strip()
    )
    if bad:
        raise ValueError(
            f"name must be a plain folder name (1-100 printable characters, no path separators, "
            f'no leading dot or spaces, none of :*?"<>|), got {name!r}; e.g. name = "my-run".'
        )


def require_memory(what: str, nbytes: float, fix: str) -> None:
    """Raise before allocating when ``what`` needs more than this machine's memory."""
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if nbytes > available:
        raise ValueError(
            f"{what} needs about {_bytes(nbytes)} of memory, more than this machine's "
            f"{_bytes(available)}; {fix}."
        )


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"
