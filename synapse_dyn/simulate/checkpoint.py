"""Checkpoints and divergence reports of network-level runs: the last good state is saved
and the error names the variable, the cycle and the time."""

import jax
import numpy as np

from synapse_dyn.io import save_state

from .integrate import SimulationError


def _check_finite(state, record, start, period, checkpoint, last_good):
    """Raise SimulationError naming the first non-finite variable and cycle of a chunk."""
    bad = [
        ("memory z", "parameters w")[path[0].idx] + jax.tree_util.keystr(path[1:])
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
        if not np.all(np.isfinite(leaf))
    ]
    broken = ~np.all(np.isfinite(record), axis=1)
    if bad or broken.any():
        cycle = start + int(np.argmax(broken))
        what = f"{bad[0] if bad else 'the network state'} became non-finite"
        _diverged(what, cycle, cycle + 1, period, checkpoint, last_good, start)


def _diverged(what, first, last, period, checkpoint, last_good, good_until=None):
    """Save the last good state (reached at cycle ``good_until``, default ``first``) and raise
    SimulationError saying what failed where."""
    good_until = first if good_until is None else good_until
    where = ""
    if checkpoint:
        save_state(checkpoint, (last_good[2], *last_good[:2]), good_until * period)
        where = f"; the last good state (t = {good_until * period:g}) is saved in {checkpoint}"
    cycles = f"cycle {first}" if last == first + 1 else f"cycles {first}-{last - 1}"
    raise SimulationError(
        f"TCL simulation diverged in {cycles} (t = {first * period:g} to {last * period:g}): "
        f"{what}{where}. "
        "Lower the learning rate or the nudge, or raise the thresholds."
    )
