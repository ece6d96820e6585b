"""The network interface shared by every substrate, the costs, and the two perturbations.

A network is a pytree of *structure* (graph, sizes, solver settings); its learnable parameters
``w`` and its state ``x`` are separate pytrees, so ``equilibrium`` and ``synaptic_current`` are
pure functions that vmap over samples and differentiate in ``w``.

Perturbations (``nudge``):
  * ``None``: the free equilibrium, argmin_x E(x; w, inputs);
  * ``SoftNudge(beta, target, cost)``: argmin_x E + beta C(o(x), y) (equilibrium propagation);
  * ``Clamp(values)``: outputs held at ``values`` and the rest relaxed (coupled learning).
Costs enter the equilibria through a quadratic majoriser of curvature ``cost.curvature``:
C(o) <= C(o') + dC(o').(o - o') + curvature/2 |o - o'|^2, exact for the MSE, so a minimiser
that handles quadratic nudges also handles cross-entropy by majorise-minimise iterations
(for beta < 0 the concave beta C is majorised by its tangent: ``majoriser_curvature``).
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PyTree, Scalar

from synapse_dyn._checks import require_finite
from synapse_dyn._runtime_checks import raise_unless_finite


class AbstractCost(eqx.Module):
    """A cost C(o, y) on the network's outputs o (one sample, shape (n_out,))."""

    curvature: ClassVar[float]
    quadratic: ClassVar[bool]

    @abc.abstractmethod
    def __call__(self, o: Float[Array, " n"], y: Float[ArrayLike, " n"]) -> Scalar:
        """C(o, y)."""

    def grad(self, o: Float[Array, " n"], y: Float[ArrayLike, " n"]) -> Float[Array, " n"]:
        """dC/do."""
        return jax.grad(self)(o, y)


class MSE(AbstractCost):
    """C = 1/2 |o - y|^2."""

    curvature: ClassVar[float] = 1.0
    quadratic: ClassVar[bool] = True

    def __call__(self, o, y):
        return 0.5 * jnp.sum((o - y) ** 2)


DEFAULT_COST = MSE()


class CrossEntropy(AbstractCost):
    """C = -sum_k y_k log softmax(o)_k; its Hessian diag(p) - p p^T is bounded by 1/2 I."""

    curvature: ClassVar[float] = 0.5
    quadratic: ClassVar[bool] = False

    def __call__(self, o, y):
        return -jnp.sum(y * jax.nn.log_softmax(o))


class SoftNudge(eqx.Module):
    """EP nudge: minimise E + beta C(o, target)."""

    beta: Float[Array, ""] = eqx.field(converter=lambda b: jnp.asarray(b, dtype=float))
    target: Float[Array, " n"] = eqx.field(converter=lambda y: jnp.asarray(y, dtype=float))
    cost: AbstractCost = MSE()

    def majoriser_curvature(self) -> Float[Array, ""]:
        """beta c of the quadratic majoriser of beta C used by the minimisers: the cost's
        curvature bound c for beta > 0 or a quadratic cost (where it is exact); 0 for beta < 0
        and a non-quadratic cost, where beta C is concave and its tangent majorises it."""
        if self.cost.quadratic:
            return self.beta * self.cost.curvature
        return jnp.maximum(self.beta, 0.0) * self.cost.curvature


class Clamp(eqx.Module):
    """CpL/CL clamp: outputs fixed at ``values``, every other free coordinate relaxed."""

    values: Float[Array, " n"] = eqx.field(converter=lambda v: jnp.asarray(v, dtype=float))


Nudge = SoftNudge | Clamp | None


class AbstractNetwork(eqx.Module):
    """An energy-based physical network.

    Subclasses provide the energy, the output read-out, how to clamp outputs, the equilibrium
    solver, the feasible set of parameters (``project``) and a parameter initialiser. The
    relaxation dynamics, the interior mask used by implicit differentiation and the
    synaptic current default to autodiff of the energy; substrates override
    ``synaptic_current`` with their local closed form.
    """

    n_inputs: eqx.AbstractVar[int]
    n_outputs: eqx.AbstractVar[int]
    relaxation_time: eqx.AbstractVar[float]
    # why an equilibrium can come out non-finite (NaN: ``synapse_dyn._runtime_checks``)
    failure: ClassVar[str] = (
        "the system is singular (a node without a path to a source or ground, a vanishing "
        "conductance), an iterative solver did not converge, or an input is NaN."
    )

    @abc.abstractmethod
    def energy(self, x: PyTree[Array], w: PyTree[Array], inputs: Float[Array, " n_in"]) -> Scalar:
        """E(x; w, inputs)."""

    @abc.abstractmethod
    def output(self, x: PyTree[Array]) -> Float[Array, " n_out"]:
        """The output read-out o(x)."""

    @abc.abstractmethod
    def clamp(self, x: PyTree[Array], values: Float[Array, " n_out"]) -> PyTree[Array]:
        """``x`` with its outputs replaced by ``values``."""

    def equilibrium(
        self,
        w: PyTree[Array],
        inputs: Float[Array, " n_in"],
        nudge: Nudge = None,
        x0: PyTree[Array] | None = None,
    ) -> PyTree[Array]:
        """argmin_x of E (+ beta C for a soft nudge; over the non-output coordinates for a
        clamp), started from ``x0`` where the solver is iterative. Validates the inputs and
        parameters (Python time), solves under jit, and raises ``RuntimeCheckError`` if the
        state is not finite."""
        if np.shape(inputs) != (self.n_inputs,):
            raise ValueError(
                f"inputs must have shape ({self.n_inputs},) for this {type(self).__name__}, got "
                f"{np.shape(inputs)}; vmap over samples, and match the task to the network."
            )
        require_finite("inputs", inputs)
        self.check_parameters(w)
        if nudge is not None:
            values = nudge.target if isinstance(nudge, SoftNudge) else nudge.values
            name = "nudge target" if isinstance(nudge, SoftNudge) else "clamp values"
            if np.shape(values) != (self.n_outputs,):
                raise ValueError(
                    f"{name} must have shape ({self.n_outputs},), one per output, got "
                    f"{np.shape(values)}."
                )
            require_finite(name, values)
            if isinstance(nudge, SoftNudge):
                require_finite("nudge beta", nudge.beta)
        x = _equilibrium(self, w, jnp.asarray(inputs, dtype=float), nudge, x0)
        self.check_state(x)
        return x

    def check_state(self, x: PyTree[Array]) -> None:
        """Raise ``RuntimeCheckError`` with the network's ``failure`` unless the computed
        state ``x`` is finite (nothing under a trace)."""
        raise_unless_finite(
            x, f"the {type(self).__name__} equilibrium is not finite: {self.failure}"
        )

    @abc.abstractmethod
    def solve(
        self,
        w: PyTree[Array],
        inputs: Float[Array, " n_in"],
        nudge: Nudge,
        x0: PyTree[Array] | None,
    ) -> PyTree[Array]:
        """The equilibrium solver proper (pure, jit- and vmap-able)."""

    @abc.abstractmethod
    def initial_state(self) -> PyTree[Array]:
        """The state iterative solvers start from by default (zeros in the bounds, rest
        positions)."""

    @abc.abstractmethod
    def project(self, w: PyTree[Array]) -> PyTree[Array]:
        """The nearest physically valid parameters (e.g. conductances >= their minimum)."""

    @abc.abstractmethod
    def init(self, key: Array) -> PyTree[Array]:
        """Random initial parameters."""

    @abc.abstractmethod
    def check_parameters(self, w: PyTree[ArrayLike]) -> None:
        """Raise ValueError for parameters outside the physical range (Python time)."""

    def state_bounds(self) -> tuple[PyTree[ArrayLike], PyTree[ArrayLike]] | None:
        """(lower, upper) box bounds of the state, or None when it is unconstrained."""
        return None

    def synaptic_current(
        self, x: PyTree[Array], w: PyTree[Array], inputs: Float[Array, " n_in"]
    ) -> PyTree[Array]:
        """s = dE/dw at the state x (same pytree as w)."""
        return jax.grad(self.energy, argnums=1)(x, w, inputs)

    def batch_current(
        self, x: PyTree[Array], w: PyTree[Array], inputs: Float[Array, "batch n_in"]
    ) -> PyTree[Array]:
        """Batch mean of s = dE/dw over states and inputs with a leading batch axis: the
        gradient of the mean energy, one contraction over the batch (no per-sample arrays of
        the size of w)."""
        energies = jax.vmap(self.energy, in_axes=(0, None, 0))
        return jax.grad(lambda w_: jnp.mean(energies(x, w_, inputs)))(w)

    def total_energy(
        self, x: PyTree[Array], w: PyTree[Array], inputs: Float[Array, " n_in"], nudge: Nudge = None
    ) -> Scalar:
        """F = E + beta C for a soft nudge, E otherwise."""
        energy = self.energy(x, w, inputs)
        if isinstance(nudge, SoftNudge):
            energy = energy + nudge.beta * nudge.cost(self.output(x), nudge.target)
        return energy

    def interior(self, x: PyTree[Array]) -> PyTree[Bool[Array, "..."]]:
        """True where a state coordinate is strictly inside its bounds (free to move)."""
        bounds = self.state_bounds()
        if bounds is None:
            return jax.tree.map(lambda leaf: jnp.ones(jnp.shape(leaf), bool), x)
        return jax.tree.map(lambda leaf, lo, hi: (leaf > lo) & (leaf < hi), x, *bounds)

    def vector_field(self, t: Scalar, x: PyTree[Array], args: tuple) -> PyTree[Array]:
        """Finite-speed relaxation, projected gradient flow dx/dt = -dF/dx / tau with
        ``args = (w, inputs, nudge)``: velocities pushing through a bound are cut, clamped
        outputs do not move."""
        del t
        w, inputs, nudge = args
        velocity = jax.tree.map(
            lambda g: -g / self.relaxation_time,
            jax.grad(self.total_energy)(x, w, inputs, nudge),
        )
        bounds = self.state_bounds()
        if bounds is not None:
            velocity = jax.tree.map(
                lambda v, leaf, lo, hi: jnp.where(
                    ((leaf <= lo) & (v < 0)) | ((leaf >= hi) & (v > 0)), 0.0, v
                ),
                velocity,
                x,
                *bounds,
            )
        if isinstance(nudge, Clamp):
            velocity = self.clamp(velocity, jnp.zeros(self.n_outputs))
        return velocity

    def check_inputs(self, inputs: ArrayLike, name: str = "inputs") -> None:
        """Raise ValueError unless ``inputs`` has shape (..., n_inputs) and is finite."""
        shape = np.shape(inputs)
        if not shape or shape[-1] != self.n_inputs:
            raise ValueError(
                f"{name} must have shape (..., {self.n_inputs}) for this {type(self).__name__}, "
                f"got shape {shape}; match the task's input size to the network's."
            )
        require_finite(name, inputs)


@eqx.filter_jit
def _equilibrium(network, w, inputs, nudge, x0):
    return network.solve(w, inputs, nudge, x0)


def check_targets(network: AbstractNetwork, targets: ArrayLike, name: str = "targets") -> None:
    """Raise ValueError unless ``targets`` has shape (..., n_outputs) and is finite."""
    shape = np.shape(targets)
    if not shape or shape[-1] != network.n_outputs:
        raise ValueError(
            f"{name} must have shape (..., {network.n_outputs}) for this {type(network).__name__}, "
            f"got shape {shape}; match the task's output size to the network's."
        )
    require_finite(name, targets)
