"""Synapse-level integration: diffrax solves of the memory and the weight driven by a
protocol (adaptive steps with the protocol's corners declared, or fixed-step SDEs with thermal
noise), and the per-cycle update ``cycle_update_ode`` that checks the exact fast path."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from synapse_dyn._checks import (
    concrete,
    require_positive,
)
from synapse_dyn.noise import Thermal
from synapse_dyn.protocols import AbstractProtocol
from synapse_dyn.synapses.memory import Synapse


class SimulationError(RuntimeError):
    """The solver failed (step-size collapse, too many steps, non-finite state)."""


class _SynapseField(eqx.Module):
    """d(z, w)/dt for a synapse driven directly by s(t) = protocol(t)."""

    synapse: Synapse
    protocol: AbstractProtocol

    def __call__(self, t, state, args):
        z, _ = state
        s = self.protocol(t)
        return self.synapse.memory.vector_field(z, s), self.synapse.velocity(z, s)


def _thermal(noise, seed, dt, kind):
    """The Thermalised spec of a simulation, or None without noise."""
    if noise is None:
        return None
    if dt is None:
        raise ValueError(
            "a simulation with thermal noise takes fixed steps: pass dt (e.g. a tenth of the "
            "fastest time scale)."
        )
    require_positive("dt", dt)
    if not isinstance(noise, Thermal):
        raise ValueError(
            f"noise must be synapse_dyn.noise.Thermal(kT), got {type(noise).__name__}."
        )
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        raise ValueError(f"noise_seed must be an integer, got {seed!r}.")
    return Thermalised(noise, int(seed), float(dt), kind)


class Thermalised(eqx.Module):
    """Thermal noise on part of the state: ``noise`` (``noise.Thermal``, its mobility stated)
    on the leaves where ``mask`` is True, a Brownian path fixed by ``seed`` (kind "virtual"
    or "increments", see ``synapse_dyn.noise``), fixed steps ``dt``."""

    noise: Thermal
    seed: int
    dt: float
    kind: str = eqx.field(static=True, default="virtual")

    def term(self, y0, mask, t0, t1):
        path = self.noise.brownian(y0, t0, t1, self.seed, self.dt / 4, self.kind)
        return self.noise.term(y0, path, mask)


class _Integrator(eqx.Module):
    """How ``simulate`` integrates: adaptive steps (``solver``, ``rtol``, ``atol``) with the
    protocol's corners declared, or, with thermal noise, fixed steps of the SDE (Heun)."""

    solver: diffrax.AbstractSolver | None
    rtol: float
    atol: float
    max_steps: int
    thermal: Thermalised | None

    def solve(
        self,
        field,
        y0,
        protocol,
        t0,
        t1,
        saveat,
        default_solver,
        mask,
        extra_steps=(),
        names=("memory z", "weight w"),
    ):
        """diffeqsolve of ``field`` from ``y0``; thermal noise acts where ``mask`` is True."""
        if self.thermal is None:
            terms, dt0, solver = diffrax.ODETerm(field), None, self.solver or default_solver
            step_ts = np.union1d(protocol.breakpoints(float(t0), float(t1)), extra_steps)
            controller = diffrax.ClipStepSizeController(
                diffrax.PIDController(rtol=self.rtol, atol=self.atol),
                step_ts=jnp.asarray(step_ts) if len(step_ts) else None,
                jump_ts=_or_none(protocol.jump_times(float(t0), float(t1))),
            )
        else:
            noise = self.thermal.term(y0, mask, t0, t1)
            terms = diffrax.MultiTerm(diffrax.ODETerm(field), noise)
            dt0, controller, solver = self.thermal.dt, diffrax.ConstantStepSize(), diffrax.Heun()
        increments = self.thermal is not None and self.thermal.kind == "increments"
        solution = diffrax.diffeqsolve(
            terms,
            solver,
            t0=t0,
            t1=t1,
            dt0=dt0,
            y0=y0,
            saveat=saveat,
            stepsize_controller=controller,
            max_steps=self.max_steps,
            throw=False,
            adjoint=diffrax.ForwardMode() if increments else diffrax.RecursiveCheckpointAdjoint(),
        )
        _raise_on_failure(solution, names)
        return solution


def _or_none(times):
    return jnp.asarray(times) if len(times) else None


def _raise_on_failure(solution: diffrax.Solution, names=("memory z", "weight w")) -> None:
    """Raise SimulationError saying how the solver failed, the last saved time with a finite
    state and which variable (``names`` of the state's parts, and index) was not finite at
    the next save."""
    if concrete(solution.result._value) is None:
        return  # traced (inside jit): diffrax's own error channel applies
    if solution.result != diffrax.RESULTS.successful:
        reached = solution.stats.get("num_steps", "?")
        raise SimulationError(
            f"the solver failed after {reached} steps: {solution.result}{_where(solution, names)}"
            ". Loosen rtol/atol, raise max_steps, or check the inputs for NaN."
        )


def _where(solution: diffrax.Solution, names) -> str:
    if solution.ts is None:
        return ""
    ts = np.asarray(solution.ts)
    for k in range(ts.size):
        good = f"; the last finite saved state is at t = {ts[k - 1]:g}" if k else ""
        if not np.isfinite(ts[k]):
            return f"{good}; the next save was not reached"
        for path, leaf in jax.tree_util.tree_leaves_with_path(solution.ys):
            row = np.asarray(leaf)[k]
            bad = np.flatnonzero(~np.isfinite(row))
            if bad.size:
                name = names[path[0].idx] + jax.tree_util.keystr(path[1:])
                return f"{good}; at t = {ts[k]:g}, {name} (flat index {bad[0]}) is not finite"
    return ""
