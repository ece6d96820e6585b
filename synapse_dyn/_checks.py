"""Python-time validation: every bad input gets a ValueError naming the argument, its value,
the allowed range and the fix. Runtime (jit-time) failures use ``eqx.error_if`` at their site."""

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
