"""The nudge in physical time: beta(t) follows a protocol while the Ising network's state obeys
the Schrodinger equation (hbar = 1, time in units of 1 / coupling)

    i d psi / dt = [H + beta(t) C] psi,    psi(0) = the free ground state,

integrated by diffrax on the state vector's real and imaginary parts (dense H, up to ~12
qubits; H is real, so i dpsi/dt = H psi is a real linear ODE of twice the size). EP needs the
ground state at the final beta; a finite ramp leaves diabatic excitations.

Adiabatic law for a linear ramp beta(t) = beta_f t / T (first-order adiabatic perturbation
theory, boundary terms of the integration by parts): with Delta_n(beta) = E_n - E_0 and
V_n0 = <n|C|0>, the excited amplitudes at t = T are

    c_n = (beta_f / T) [V_n0 / Delta_n^2 |_{beta_f} - V_n0 / Delta_n^2 |_0 e^{-i phi_n}],
    phi_n = integral_0^T Delta_n(beta(t)) dt,

so 1 - F = sum_n |c_n|^2 ~ T^-2, oscillating in T (the two kinks of the ramp interfere), with
phase average 2 sum_n (beta_f V_n0 / Delta_n^2)^2 / T^2: the nudge must be slow against
1 / Delta, and the error grows as Delta^-4 as the gap closes.
"""

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from synapse_dyn._checks import require_positive, require_x64
from synapse_dyn._runtime_checks import poison, raise_unless_finite
from synapse_dyn.networks._base import SoftNudge
from synapse_dyn.protocols import AbstractProtocol

from .ising import GroundState, TransverseFieldIsing, _spins

MAX_QUBITS = 12


def _setup(network, w, inputs, target):
    if network.method != "exact" or network.n_qubits > MAX_QUBITS:
        raise ValueError(
            f"Schrodinger evolution uses the dense state vector: method='exact' and at most "
            f"{MAX_QUBITS} qubits, got method={network.method!r} with {network.n_qubits} qubits."
        )
    network.check_nudge(SoftNudge(0.0, target))
    hamiltonian = network.matrix(w, inputs).toarray()
    cost = -_spins(network.n_qubits)[:, network.output_qubits] @ np.asarray(target, float)
    return hamiltonian, cost  # C = cost (diagonal) + a constant, which only adds a phase


def schrodinger_nudge(
    network: TransverseFieldIsing,
    w: dict,
    inputs: Float[ArrayLike, " n_in"],
    target: Float[ArrayLike, " n_out"],
    protocol: AbstractProtocol,
    duration: float,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> np.ndarray:
    """psi(duration) under i dpsi/dt = (H + beta(t) C) psi from the free ground state, with
    beta(t) = protocol(t) (Dopri8, adaptive steps, the protocol's corners as jump times)."""
    require_x64("schrodinger_nudge")
    require_positive("duration", duration)
    hamiltonian, cost = _setup(network, w, inputs, target)
    psi0 = network.solve(w, inputs).vector
    corners = np.asarray(protocol.breakpoints(0.0, float(duration)), dtype=float)
    corners = corners[(corners > 0) & (corners < duration)]
    psi = _evolve(
        jnp.asarray(hamiltonian),
        jnp.asarray(cost),
        jnp.asarray(psi0),
        protocol,
        jnp.asarray(duration, dtype=float),
        jnp.asarray(corners) if corners.size else None,
        rtol,
        atol,
    )
    raise_unless_finite(psi, "the Schrodinger evolution failed or produced NaN (lower rtol).")
    return np.asarray(psi)


@eqx.filter_jit
def _evolve(hamiltonian, cost, psi0, protocol, duration, corners, rtol, atol):
    """Dopri8 on (Re psi, Im psi): d Re/dt = H_t Im, d Im/dt = -H_t Re (H_t real)."""

    def field(t, psi, args):
        real, imag = psi
        apply = lambda v: hamiltonian @ v + protocol(t) * cost * v
        return apply(imag), -apply(real)

    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Dopri8(),
        0.0,
        duration,
        None,
        (psi0, jnp.zeros_like(psi0)),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, jump_ts=corners),
        max_steps=None,
        throw=False,
    )
    psi = solution.ys[0][-1] + 1j * solution.ys[1][-1]
    return poison(psi, solution.result == diffrax.RESULTS.successful)


def diabatic_error(
    network: TransverseFieldIsing,
    w: dict,
    inputs: Float[ArrayLike, " n_in"],
    target: Float[ArrayLike, " n_out"],
    protocol: AbstractProtocol,
    duration: float,
) -> dict[str, float]:
    """{infidelity: 1 - |<g|psi(T)>|^2, output_error: max_o |<Z_o>_psi - <Z_o>_g|} with g the
    ground state at the final beta = protocol(duration)."""
    psi = schrodinger_nudge(network, w, inputs, target, protocol, duration)
    beta = float(protocol(duration))
    ground = network.solve(w, inputs, SoftNudge(beta, target))
    evolved = GroundState(float("nan"), vector=psi)
    return {
        "infidelity": float(1.0 - abs(np.vdot(ground.vector, psi)) ** 2),
        "output_error": float(np.abs(network.output(evolved) - network.output(ground)).max()),
    }


def linear_ramp_prediction(
    network: TransverseFieldIsing,
    w: dict,
    inputs: Float[ArrayLike, " n_in"],
    target: Float[ArrayLike, " n_out"],
    beta_final: float,
    durations: Float[ArrayLike, " k"],
    nodes: int = 8,
) -> tuple[np.ndarray, float]:
    """(1 - F predicted at each ramp time T, the coefficient a of the phase-averaged law
    1 - F ~ a / T^2) for the linear ramp, by the first-order formula of the module docstring;
    phi_n by Gauss-Legendre quadrature over beta with ``nodes`` points."""
    hamiltonian, cost = _setup(network, w, inputs, target)
    durations = np.asarray(durations, dtype=float)

    def spectrum(beta):
        return np.linalg.eigh(hamiltonian + beta * np.diag(cost))

    (e0, u0), (e1, u1) = spectrum(0.0), spectrum(beta_final)
    u1 = u1 * np.sign(np.sum(u0 * u1, axis=0))  # the gauge continued from beta = 0
    ends = [(u[:, 1:].T @ (cost * u[:, 0])) / (e[1:] - e[0]) ** 2 for e, u in ((e0, u0), (e1, u1))]
    points, weights = np.polynomial.legendre.leggauss(nodes)
    gaps = sum(  # mean gap along the ramp, integral_0^1 Delta_n(beta_f s) ds
        0.5 * wq * (lambda e: e[1:] - e[0])(spectrum(0.5 * beta_final * (1 + p))[0])
        for p, wq in zip(points, weights, strict=True)
    )
    phases = durations[:, None] * gaps[None, :]
    amplitudes = beta_final / durations[:, None] * (ends[1] - ends[0] * np.exp(-1j * phases))
    averaged = 2.0 * beta_final**2 * float(np.sum(ends[0] ** 2))
    return np.sum(np.abs(amplitudes) ** 2, axis=1), averaged
