"""Checkpoints and divergence reports of network-level runs: the state and the records so far
are saved (arrays and a JSON header, ``synapse_dyn.io.save_state``) with the configuration's
fingerprint, a run resumes from them bit-identically, and a divergence names the variable,
its index, the cycle and time, and where the last good state is."""

import pathlib
import time

import jax
import numpy as np

from synapse_dyn.io import fingerprint, read_checkpoint, save_state

from .integrate import SimulationError

_NAMES = ("memory z", "parameters w", "network state x")


class Checkpointer:
    """Saves ``(x, z, w)`` and the per-cycle records of a quasi-static run to ``path`` after a
    chunk of cycles when ``every`` seconds have passed since the last save (and at the end),
    tagged with the fingerprint of ``configuration`` (a tuple of modules and arrays); with
    ``path=None`` nothing is saved."""

    def __init__(self, path, configuration, period: float, every: float = 5.0):
        self.path = None if path is None else pathlib.Path(path)
        self.fingerprint = None if path is None else fingerprint(configuration)
        self.period = period
        self.every = every
        self.last = time.monotonic()

    def save(self, carry, cycle: int, records, force: bool = False) -> None:
        if self.path is None or (not force and time.monotonic() - self.last < self.every):
            return
        z, w, free = carry
        done = np.concatenate(records) if records else np.empty((0, 5))
        save_state(self.path, (free, z, w), cycle * self.period, self.fingerprint, done)
        self.last = time.monotonic()

    def resume(self, first: int, n_cycles: int):
        """(carry, next cycle, records) from the checkpoint, or None when there is none;
        refuses a checkpoint of another configuration or outside the run's cycles."""
        if self.path is None or not self.path.exists():
            return None
        saved = read_checkpoint(self.path, self.fingerprint)
        cycle = int(round(saved.t / self.period))
        if not first <= cycle <= first + n_cycles or len(saved.extra) != cycle - first:
            raise ValueError(
                f"checkpoint {str(self.path)!r} ends at t = {saved.t:g}, outside this run's "
                f"[{first * self.period:g}, {(first + n_cycles) * self.period:g}]; set t0 and t1 "
                "to the run it belongs to, or delete it to start anew."
            )
        free, z, w = saved.state
        as_jax = lambda tree: jax.tree.map(jax.numpy.asarray, tree)  # noqa: E731
        return (as_jax(z), as_jax(w), as_jax(free)), cycle, [np.asarray(saved.extra)]


def _first_bad(tree):
    """'memory z[1] (element 7)' for the first leaf of ``(z, w, x)`` with a non-finite value."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        bad = np.flatnonzero(~np.isfinite(np.asarray(leaf)))
        if bad.size:
            name = _NAMES[path[0].idx] + jax.tree_util.keystr(path[1:])
            return f"{name} (flat index {bad[0]} of {np.size(leaf)})"
    return None


def _check_finite(carry, record, start, saver, last_good, records):
    """Raise SimulationError naming the first non-finite variable and cycle of a chunk."""
    bad = _first_bad(carry)
    broken = ~np.all(np.isfinite(record), axis=1)
    if bad or broken.any():
        cycle = start + int(np.argmax(broken)) if broken.any() else start + len(record) - 1
        what = f"{bad or 'the loss or energy of the free state'} became non-finite"
        _diverged(what, cycle, cycle + 1, saver, last_good, records, start)


def _diverged(what, first, last, saver, last_good, records, good_until):
    """Save the last good state (reached at cycle ``good_until``, with ``records`` up to it)
    and raise SimulationError saying what failed where."""
    period = saver.period
    where = ""
    if saver.path is not None:
        saver.save(last_good, good_until, records, force=True)
        where = (
            f"; the last good state (t = {good_until * period:g}) is saved in {saver.path}: "
            "resume=True continues from it"
        )
    cycles = f"cycle {first}" if last == first + 1 else f"cycles {first}-{last - 1}"
    raise SimulationError(
        f"TCL simulation diverged in {cycles} (t = {first * period:g} to {last * period:g}): "
        f"{what}{where}. Lower the learning rate or the nudge, or raise the thresholds."
    )
