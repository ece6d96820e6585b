"""Sparse direct solves for large networks on CPU: SuperLU (scipy, minimum-degree ordering of
A + A^T, symmetric mode) called back from jit.

``sparse_factor`` factorises a matrix once and returns a handle (``SparseFactor``, a key: the
SHA-256 of pattern and values) that solves against it without reading the matrix again, so a
chord or modified-Newton loop hashes and factorises its matrix once, outside the loop.
Factorisations are kept (the most recently used, at most ``FACTORISATIONS`` of them and
``STORED_ENTRIES`` stored entries in all, at least the last one) under their key: every nudge
level of a TCL cycle, and every later request of the same matrix, reuse one. A chord matrix
may also stand in for a nearby one (``within``): the free and nudged states of an elastic
network's TCL cycles keep one rest Hessian's factorisation while the stiffnesses change little.
Measured on the elastic Hessian of a 10^4-node triangular lattice (2 x 10^4 unknowns): a
factorisation takes 85-100 ms alone and 170-210 ms inside a TCL cycle (a third of it the
kernel zeroing new pages for the factors, perf), a solve with it 3 ms (5.5 ms for two
right-hand sides inside the cycle), a SHA-256 of the matrix 2-6 ms, a stand-in test 3 ms."""

import dataclasses
import functools
import hashlib
import threading
from collections import Counter, OrderedDict

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jaxtyping import Array, Float, Int, UInt8

FACTORISATIONS = 16
# about 1.6 GB of factors (SuperLU's nnz; L + U of an elastic lattice of 10^5 nodes: 3.9e7)
STORED_ENTRIES = 2**27
KEY_BYTES = 32  # SHA-256
REPEATED = 64  # right-hand sides remembered per factorisation


@dataclasses.dataclass(frozen=True)
class _Factor:
    """A factorisation, the values of the matrix it factorises (to test a stand-in), and the
    solutions of the right-hand sides asked for more than once (the Woodbury columns H^-1 P
    of every chord loop): at most ``REPEATED`` of them, and ``REPEATED`` digests seen once."""

    values: np.ndarray
    lu: spla.SuperLU
    seen: OrderedDict[bytes, None] = dataclasses.field(default_factory=OrderedDict)
    repeated: OrderedDict[bytes, np.ndarray] = dataclasses.field(default_factory=OrderedDict)

    def solve(self, columns):
        """The solutions of ``columns`` (k, n), each distinct column solved once."""
        digests = [hashlib.sha256(column).digest() for column in columns]
        with _lock:
            known = {d: self.repeated[d] for d in digests if d in self.repeated}
        todo = {d: i for i, d in enumerate(digests) if d not in known}  # first of each
        if todo:
            solved = self.lu.solve(np.ascontiguousarray(columns[list(todo.values())].T)).T
            known.update(zip(todo, solved, strict=True))
        with _lock:
            _counts["solves"] += len(todo)
            for digest in todo:
                if digest in self.seen:
                    self.repeated[digest] = known[digest].copy()
                self.seen[digest] = None
            for kept in (self.seen, self.repeated):
                while len(kept) > REPEATED:
                    kept.popitem(last=False)
        return np.stack([known[d] for d in digests])


_factorisations: OrderedDict[bytes, _Factor] = OrderedDict()
# per pattern, the key of the last factorisation made for a request with ``within`` > 0
_chords: dict[bytes, bytes] = {}
_lock = threading.Lock()
_counts: Counter[str] = Counter()


def statistics() -> dict[str, int]:
    """Counts since import: ``factorisations`` made, ``stand_ins`` (requests with ``within``
    served by another matrix's factorisation), ``solves`` (right-hand sides solved)."""
    with _lock:
        return {name: _counts[name] for name in ("factorisations", "stand_ins", "solves")}


class SparseDirect(eqx.Module):
    """Sparse direct solver for large networks on CPU (``sparse_solve``): SuperLU called back
    from jit, differentiable by implicit differentiation. Under vmap, every batch of
    right-hand sides that shares one matrix is solved with one factorisation."""


def _pattern(rows, cols):
    """The SHA-256 of a pattern, to be extended by the values."""
    digest = hashlib.sha256(np.ascontiguousarray(rows))
    digest.update(np.ascontiguousarray(cols))
    return digest


def _first(a):
    """A vmapped, unbatched index array (leading axes of size 1) as one row."""
    return np.reshape(a, (-1, a.shape[-1]))[0]


def _key(pattern, rows, cols, values, within: float) -> bytes:
    """The key of a kept factorisation of A = sparse(values at rows, cols) (duplicates
    summed): (``within`` > 0) that of the last chord matrix A_f of the ``pattern`` (a SHA-256
    object) if |A - A_f| <= within |A_f| entrywise, else A's own, factorised now if not kept."""
    with _lock:
        chord = _chords.get(pattern.digest()) if within > 0 else None
        kept = _factorisations.get(chord) if chord else None
        if kept is not None and np.all(
            np.abs(values - kept.values) <= within * np.abs(kept.values)
        ):
            _counts["stand_ins"] += not np.array_equal(values, kept.values)
            _factorisations.move_to_end(chord)
            return chord
    digest = pattern.copy()
    digest.update(np.ascontiguousarray(values))
    key = digest.digest()
    with _lock:
        if key in _factorisations:
            _factorisations.move_to_end(key)
            return key
    n = int(max(rows.max(), cols.max())) + 1
    lu = spla.splu(
        sp.csc_matrix((values, (rows, cols)), shape=(n, n)),
        permc_spec="MMD_AT_PLUS_A",
        diag_pivot_thresh=0.0,
        options={"SymmetricMode": True},
    )
    with _lock:
        _factorisations[key] = _Factor(np.array(values), lu)
        _counts["factorisations"] += 1
        if within > 0:
            _chords[pattern.digest()] = key
        while len(_factorisations) > 1 and (
            len(_factorisations) > FACTORISATIONS
            or sum(kept.lu.nnz for kept in _factorisations.values()) > STORED_ENTRIES
        ):
            _factorisations.popitem(last=False)
    return key


def _factorise_callback(rows, cols, values, within):
    """The keys (..., KEY_BYTES) of the matrices ``values`` (..., nnz) (leading vmap axes)."""
    rows, cols = _first(rows), _first(cols)
    pattern = _pattern(rows, cols)
    keys = np.empty((*values.shape[:-1], KEY_BYTES), np.uint8)
    for index in np.ndindex(values.shape[:-1]):
        key = _key(pattern, rows, cols, values[index], within)
        keys[index] = np.frombuffer(key, np.uint8)
    return keys


def _solve_callback(keys, rows, cols, values, rhs):
    """x with A x = rhs for the factorisations ``keys``. The leading (vmap) axes of ``keys``
    and ``values`` select the matrix, size 1 where it is shared; ``rhs`` has the same leading
    axes, then any axes of right-hand sides. Each factorisation solves its distinct
    right-hand sides at once (``_Factor.solve``: every nudge level of a TCL cycle brings the
    same matrix and some the same columns); one evicted since ``sparse_factor`` is factorised
    again."""
    n = rhs.shape[-1]
    matrices = keys.shape[:-1]
    batch = np.broadcast_shapes(matrices, rhs.shape[: len(matrices)])
    rhs = np.broadcast_to(rhs, (*batch, *rhs.shape[len(matrices) :]))
    out = np.empty(rhs.shape, dtype=rhs.dtype)
    groups: dict[bytes, list[tuple]] = {}
    for index in np.ndindex(matrices):
        groups.setdefault(keys[index].tobytes(), []).append(index)
    values = np.broadcast_to(values, (*matrices, values.shape[-1]))
    for key, indices in groups.items():
        with _lock:
            kept = _factorisations.get(key)
        if kept is None:
            key = _factorise_callback(rows, cols, values[indices[0]], 0.0).tobytes()
            with _lock:
                kept = _factorisations[key]
        blocks = [
            tuple(slice(None) if size == 1 else k for k, size in zip(index, matrices, strict=True))
            for index in indices
        ]
        solved = kept.solve(np.concatenate([rhs[block].reshape(-1, n) for block in blocks]))
        start = 0
        for block in blocks:
            count = int(np.prod(rhs[block].shape[:-1]))
            out[block] = solved[start : start + count].reshape(rhs[block].shape)
            start += count
    return out


class SparseFactor(eqx.Module):
    """A kept SuperLU factorisation of the sparse symmetric A = sparse(values at rows, cols)
    (``sparse_factor``), or of the chord matrix standing in for it."""

    key: UInt8[Array, " 32"]
    rows: Int[Array, " nnz"]
    cols: Int[Array, " nnz"]
    values: Float[Array, " nnz"]

    def solve(self, rhs: Float[Array, "*batch n"]) -> Float[Array, "*batch n"]:
        """x with A x = rhs; leading axes of ``rhs`` are right-hand sides of the same A. Not
        differentiable by itself: wrap it in ``jax.lax.custom_linear_solve``."""
        out = jax.ShapeDtypeStruct(rhs.shape, rhs.dtype)
        return jax.pure_callback(
            _solve_callback,
            out,
            self.key,
            self.rows,
            self.cols,
            self.values,
            rhs,
            vmap_method="expand_dims",
        )


def sparse_factor(
    rows: Int[Array, " nnz"],
    cols: Int[Array, " nnz"],
    values: Float[Array, " nnz"],
    within: float = 0.0,
) -> SparseFactor:
    """The factorisation of A = sparse(values at rows, cols) (duplicate entries summed), kept
    for the solves of ``SparseFactor.solve``. Under vmap, equal matrices share one.

    ``within`` > 0 (a chord or preconditioner matrix, not an exact solve): A may be replaced by
    the last chord matrix A_f factorised on its pattern if |A - A_f| <= within |A_f|
    entrywise. For A = sum_e k_e B_e with B_e positive semidefinite (a rest Hessian, a
    Laplacian) this is |k_e - k_f,e| <= within k_f,e for every term, so
    (1 - within) A_f <= A <= (1 + within) A_f and a chord step x <- x - A_f^-1 (A x - b)
    shrinks the error by the factor ``within`` or more (in the A_f norm)."""
    out = jax.ShapeDtypeStruct((KEY_BYTES,), jnp.uint8)
    callback = functools.partial(_factorise_callback, within=within)
    key = jax.pure_callback(callback, out, rows, cols, values, vmap_method="expand_dims")
    return SparseFactor(key, jnp.asarray(rows), jnp.asarray(cols), values)


def sparse_solve(
    rows: Int[Array, " nnz"],
    cols: Int[Array, " nnz"],
    values: Float[Array, " nnz"],
    rhs: Float[Array, "*batch n"],
) -> Float[Array, "*batch n"]:
    """x with A x = rhs for the sparse symmetric A = sparse(values at rows, cols): one
    ``sparse_factor`` and its solve."""
    return sparse_factor(rows, cols, values).solve(rhs)
