"""Synaptic memory as ODE state: each synapse carries memory variables z driven by its
local current s, and emits the signal u that the nonlinearity turns into a weight velocity.

All state arrays have the memory variables on the last axis, so one module serves any
number of synapses (leading axes broadcast).
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from synapse_dyn._checks import require_finite, require_positive

from .kernels import StateSpaceKernel
from .nonlinearities import AbstractNonlinearity


class AbstractMemory(eqx.Module):
    """Memory dynamics dz/dt = f(z, s) with output u = h(z, s)."""

    @abc.abstractmethod
    def vector_field(
        self, z: Float[Array, "... n"], s: Float[ArrayLike, "..."]
    ) -> Float[Array, "... n"]:
        """dz/dt given the memory state and the synaptic current."""

    @abc.abstractmethod
    def output(self, z: Float[Array, "... n"], s: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """The signal u fed to the nonlinearity."""

    @abc.abstractmethod
    def steady_state(self, s: Float[ArrayLike, "..."]) -> Float[Array, "... n"]:
        """The fixed point of the memory for a constant current s."""


class AbstractLinearMemory(AbstractMemory):
    """A linear time-invariant memory acting on the deviation from its setpoint u0:
    dz/dt = M z + b (s - u0),  u = c.z + d (s - u0).
    Its impulse response is the kernel K(t) = c e^{M t} b with feedthrough d, so
    u = K * (s - u0) exactly; ``kernel()`` returns it for the fast periodic analysis."""

    setpoint: eqx.AbstractVar[Float[ArrayLike, ""]]

    @abc.abstractmethod
    def state_space(self) -> tuple[Array, Array, Array, Array]:
        """(M, b, c, d)."""

    def vector_field(self, z, s):
        matrix, b, _, _ = self.state_space()
        return z @ matrix.T + jnp.einsum("...,k->...k", jnp.asarray(s) - self.setpoint, b)

    def output(self, z, s):
        _, _, c, d = self.state_space()
        return z @ c + d * (jnp.asarray(s) - self.setpoint)

    def steady_state(self, s):
        matrix, b, _, _ = self.state_space()
        return -jnp.einsum(
            "...,k->...k", jnp.asarray(s) - self.setpoint, jnp.linalg.solve(matrix, b)
        )

    def follow(
        self, z: Float[Array, "... n"], shift: Float[ArrayLike, "..."]
    ) -> Float[Array, "... n"]:
        """The state after the current has drifted by ``shift`` slowly enough for the memory
        to follow (adiabatically): z - M^{-1} b shift, the change of the steady state."""
        matrix, b, _, _ = self.state_space()
        return z - jnp.einsum("...,k->...k", jnp.asarray(shift), jnp.linalg.solve(matrix, b))

    def kernel(self) -> StateSpaceKernel:
        matrix, b, c, d = self.state_space()
        return StateSpaceKernel(matrix, b, c, d)


class IntegralFeedback(AbstractLinearMemory):
    """Integral feedback: u = s - x, dx/dt = (u - u0)/tau - x/leak_time, and g sees u - u0.

    Perfect adaptation without leak (u -> u0 for any constant s). Kernel
    K(t) = delta(t) - (1/tau) e^{-t/tau} (area 0, first moment -tau); a finite leak time
    leaves the area I = (tau/leak_time) / (1 + tau/leak_time), imperfect adaptation.
    """

    tau: Float[ArrayLike, ""]
    leak_time: Float[ArrayLike, ""] = jnp.inf
    setpoint: Float[ArrayLike, ""] = 0.0

    def __check_init__(self):
        require_positive("IntegralFeedback tau", self.tau)
        require_positive("IntegralFeedback leak_time", self.leak_time, allow_inf=True)
        require_finite("IntegralFeedback setpoint", self.setpoint)

    def state_space(self):
        decay = 1.0 / self.tau + 1.0 / self.leak_time
        return (
            -jnp.reshape(decay, (1, 1)),
            jnp.reshape(1.0 / self.tau, (1,)),
            -jnp.ones(1),
            jnp.ones(()),
        )


class EColiCascade(AbstractLinearMemory):
    """Three first-order stages y_k' = B (y_{k-1} - y_k), y_0 = s - u0, read out as
    u = (A/B^2) y_2 - (2 C A / B^3) y_3: the ODE whose impulse response is the E. coli kernel
    A e^{-Bt}(t - C t^2) of area I and first moment -1 (for I = 0, u = d y_3/dt).
    """

    tau_kernel: Float[ArrayLike, ""] = 0.05
    area: Float[ArrayLike, ""] = 0.0
    setpoint: Float[ArrayLike, ""] = 0.0

    def __check_init__(self):
        require_positive("EColiCascade tau_kernel", self.tau_kernel)
        require_finite("EColiCascade area", self.area)

    def state_space(self):
        rate = 1.0 / self.tau_kernel
        amplitude = 3 * self.area * rate**2 + rate**3
        curvature = (rate**2 + 2 * rate * self.area) / (6 * self.area + 2 * rate)
        matrix = rate * (jnp.diag(-jnp.ones(3)) + jnp.diag(jnp.ones(2), k=-1))
        b = jnp.stack([rate, jnp.zeros(()), jnp.zeros(())])
        c = jnp.stack([jnp.zeros(()), amplitude / rate**2, -2 * curvature * amplitude / rate**3])
        return matrix, b, c, jnp.zeros(())


class Synapse(eqx.Module):
    """A learning degree of freedom: memory z driven by the local current s, and
    dw/dt = -learning_rate * g(u). With s = dE/dw and a sawtooth that ramps quickly to the
    clamped state, integral g(u) dt over a cycle ~ s_clamped - s_free, so w moves down the
    gradient of the cost (sign convention of docs/conventions.md)."""

    memory: AbstractMemory
    nonlinearity: AbstractNonlinearity
    learning_rate: Float[ArrayLike, ""] = 1.0

    def __check_init__(self):
        require_positive("Synapse learning_rate", self.learning_rate, allow_zero=True)

    def velocity(self, z, s):
        """dw/dt = -learning_rate g(u(z, s))."""
        return -self.learning_rate * self.nonlinearity(self.memory.output(z, s))
