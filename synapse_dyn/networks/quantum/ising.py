"""Transverse-field Ising networks on any graph: ground states by exact diagonalisation
(sparse Lanczos) or DMRG, Hellmann-Feynman synaptic currents, and projective measurements.

Hamiltonian (energies in units of the couplings, hbar = 1), qubits i = 0 .. n-1, edges (a, b):

    H(theta, x) = - sum_e J_e Z_a Z_b - sum_i (h_i + x_i) Z_i - sum_i Gamma_i X_i,

with theta = {J, h, Gamma} the learnable parameters and the inputs x added to the longitudinal
field of the input qubits. Outputs o = <Z_o> on the output qubits. The cost operator of EP,
C = 1/2 sum_o (Z_o - y_o)^2, is diagonal and, as Z_o^2 = 1, equals
sum_o (1 + y_o^2)/2 - sum_o y_o Z_o: the nudge beta C is a longitudinal field beta y_o on the
outputs plus a constant. The loss is its ground-state expectation L = <C>.

The state of the network is its ground state psi_0 (a vector, or an MPS); the synaptic
current is s = <dH/dtheta> (Hellmann-Feynman): s_J = -<Z_a Z_b>, s_h = -<Z_i>,
s_Gamma = -<X_i>. Basis order: qubit 0 is the most significant bit of the basis index (as in
quimb), Z|0> = +|0>. quimb is imported only by the DMRG path (its import takes seconds).
"""

import functools
import importlib
import warnings
from typing import Literal

import equinox as eqx
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jaxtyping import Array, ArrayLike, Float
from threadpoolctl import ThreadpoolController

from synapse_dyn._checks import require_finite, require_positive
from synapse_dyn.networks._base import MSE, SoftNudge
from synapse_dyn.networks.graphs import Graph

PARAMETERS = ("J", "h", "Gamma")
DENSE_QUBITS = 8  # up to here exact diagonalisation is dense (numpy eigh), beyond it Lanczos


def single_threaded():
    """One BLAS thread for the small dense and Lanczos solves: extra threads only add
    synchronisation there (a 256 x 256 eigh took 2.3 s with two OpenBLAS threads on a loaded
    two-core machine, 8 ms with one)."""
    return _threadpools().limit(limits=1, user_api="blas")


@functools.cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


class DegenerateGroundStateWarning(UserWarning):
    """The spectral gap above the ground state is below the network's ``gap_tolerance``."""


@functools.lru_cache(maxsize=4)
def _spins(n: int) -> np.ndarray:
    """(2^n, n) int8 table of Z eigenvalues +-1 of every basis state (qubit 0 = top bit)."""
    index = np.arange(2**n)
    return (1 - 2 * ((index[:, None] >> (n - 1 - np.arange(n))) & 1)).astype(np.int8)


@functools.lru_cache(maxsize=4)
def _columns(n: int) -> np.ndarray:
    """(2^n, n + 1) column indices of H's rows: the diagonal, then X_i (qubit i's bit flipped)."""
    index = np.arange(2**n)
    flips = index[:, None] ^ (1 << (n - 1 - np.arange(n)))
    return np.concatenate([index[:, None], flips], axis=1).astype(np.int32)


def hadamard_all(psi: np.ndarray, n: int) -> np.ndarray:
    """H^{(x)n} psi: the amplitudes in the X basis (outcome bit 0 = X eigenvalue +1)."""
    psi = psi.reshape((2,) * n + psi.shape[1:])
    for axis in range(n):
        a, b = np.take(psi, 0, axis=axis), np.take(psi, 1, axis=axis)
        psi = np.stack([a + b, a - b], axis=axis) / np.sqrt(2.0)
    return psi.reshape((2**n,) + psi.shape[n:])


def _quimb(module: str):
    """A quimb module, without the advice to install kahypar that cotengra prints: a path
    optimiser for large tensor networks that DMRG's contractions do not use. cotengra gives it
    from a cached function on quimb's first contraction (it reached users and the test log
    while only the import was silenced), so that function is called once here, silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Couldn't import `kahypar`", category=UserWarning)
        hyper = importlib.import_module("cotengra.hyperoptimizers.hyper")
        getattr(hyper, "get_default_hq_methods", lambda: None)()
        return importlib.import_module(module)


class GroundState(eqx.Module):
    """A ground state: ``vector`` (exact) or ``mps`` (quimb MPS, DMRG); ``energy`` is the
    eigenvalue of the Hamiltonian it was solved for (nudge included); ``gap`` the distance to
    the first excited level (exact only, None for DMRG)."""

    energy: float
    gap: float | None = None
    vector: np.ndarray | None = None
    mps: object = None


class TransverseFieldIsing(eqx.Module):
    """A transverse-field Ising network (module docstring) on ``graph``'s edges with inputs on
    ``input_qubits`` and outputs on ``output_qubits``.

    ``method``: "exact" (dense eigh up to 8 qubits, sparse Lanczos up to ``max_exact_qubits``)
    or "dmrg" (quimb DMRG2 on an MPO in qubit order: chains and ladders, 64+ qubits; bond
    dimensions ``bond_dims``, truncation ``cutoff``, energy convergence ``dmrg_tol``).
    ``gap_tolerance``: exact solves warn when the gap is smaller (the ground state, and so the
    estimator, is then ill-defined). ``project`` keeps Gamma >= ``min_transverse_field``."""

    graph: Graph
    input_qubits: np.ndarray
    output_qubits: np.ndarray
    method: str = eqx.field(static=True)
    max_exact_qubits: int = eqx.field(static=True)
    gap_tolerance: float = eqx.field(static=True)
    min_transverse_field: float = eqx.field(static=True)
    bond_dims: tuple = eqx.field(static=True)
    cutoff: float = eqx.field(static=True)
    dmrg_tol: float = eqx.field(static=True)

    def __init__(
        self,
        graph: Graph,
        input_qubits,
        output_qubits,
        method: Literal["exact", "dmrg"] = "exact",
        max_exact_qubits: int = 20,
        gap_tolerance: float = 1e-6,
        min_transverse_field: float = 0.1,
        bond_dims=(16, 32, 64, 128),
        cutoff: float = 1e-12,
        dmrg_tol: float = 1e-11,
    ):
        n = graph.n_nodes
        qubits = {}
        for name, value in (("input_qubits", input_qubits), ("output_qubits", output_qubits)):
            value = np.asarray(value, dtype=np.int32).ravel()
            bad = value[(value < 0) | (value >= n)]
            if bad.size or np.unique(value).size != value.size:
                raise ValueError(
                    f"{name} must be distinct qubit indices in [0, {n}), got {value.tolist()}."
                )
            qubits[name] = value
        if qubits["output_qubits"].size == 0:
            raise ValueError("the network needs at least one output qubit.")
        if method not in ("exact", "dmrg"):
            raise ValueError(f'method must be "exact" or "dmrg", got {method!r}.')
        if method == "exact" and n > max_exact_qubits:
            raise ValueError(
                f"{n} qubits is too many for exact diagonalisation (2^{n} amplitudes; limit "
                f"max_exact_qubits={max_exact_qubits}); use method='dmrg' for chains and ladders, "
                "or raise max_exact_qubits if you have the memory."
            )
        require_positive("gap_tolerance", gap_tolerance)
        require_positive("min_transverse_field", min_transverse_field, allow_zero=True)
        require_positive("cutoff", cutoff)
        require_positive("dmrg_tol", dmrg_tol)
        self.graph = graph
        self.input_qubits = qubits["input_qubits"]
        self.output_qubits = qubits["output_qubits"]
        self.method = method
        self.max_exact_qubits = int(max_exact_qubits)
        self.gap_tolerance = float(gap_tolerance)
        self.min_transverse_field = float(min_transverse_field)
        self.bond_dims = tuple(int(d) for d in bond_dims)
        self.cutoff = float(cutoff)
        self.dmrg_tol = float(dmrg_tol)

    @property
    def n_qubits(self) -> int:
        return self.graph.n_nodes

    @property
    def n_inputs(self) -> int:
        return self.input_qubits.size

    @property
    def n_outputs(self) -> int:
        return self.output_qubits.size

    # ---- parameters -----------------------------------------------------------------------

    def init(self, seed: int = 0, gamma: float = 1.0) -> dict[str, np.ndarray]:
        """J ~ U[-1, 1], h ~ U[-0.1, 0.1], Gamma = ``gamma`` (a gapped paramagnet-ish start)."""
        rng = np.random.default_rng(seed)
        return {
            "J": rng.uniform(-1.0, 1.0, self.graph.n_edges),
            "h": rng.uniform(-0.1, 0.1, self.n_qubits),
            "Gamma": np.full(self.n_qubits, float(gamma)),
        }

    def check_parameters(self, w) -> None:
        """Raise unless w = {J: (n_edges,), h: (n,), Gamma: (n,)}, real and finite (complex
        couplings would make H non-Hermitian)."""
        if not isinstance(w, dict) or set(w) != set(PARAMETERS):
            got = sorted(w) if isinstance(w, dict) else type(w).__name__
            raise ValueError(f"parameters must be a dict with keys {PARAMETERS}, got {got}.")
        shapes = {"J": (self.graph.n_edges,), "h": (self.n_qubits,), "Gamma": (self.n_qubits,)}
        for key, shape in shapes.items():
            if np.iscomplexobj(w[key]):
                raise TypeError(
                    f"parameter {key} is complex: H must be Hermitian, so couplings and fields "
                    "are real; pass real arrays."
                )
            if np.shape(w[key]) != shape:
                raise ValueError(
                    f"parameter {key} must have shape {shape}, got {np.shape(w[key])}."
                )
            require_finite(f"parameter {key}", w[key])

    def project(self, w):
        """Gamma <- max(Gamma, min_transverse_field): with every Gamma_i > 0 the X terms
        connect all basis states, so by the Perron-Frobenius theorem the ground state of this
        stoquastic H is unique (the estimator stays defined while learning)."""
        return {**w, "Gamma": np.maximum(w["Gamma"], self.min_transverse_field)}

    # ---- the Hamiltonian ------------------------------------------------------------------

    def fields(self, w, inputs, nudge: SoftNudge | None = None) -> np.ndarray:
        """The longitudinal field h + x (inputs) + beta y (the MSE nudge)."""
        h = np.array(w["h"], dtype=float)
        h[self.input_qubits] += np.asarray(inputs, dtype=float)
        if nudge is not None:
            h[self.output_qubits] += float(nudge.beta) * np.asarray(nudge.target, dtype=float)
        return h

    def matrix(self, w, inputs, nudge: SoftNudge | None = None) -> sp.csr_matrix:
        """H (+ beta C, without its constant) as a sparse 2^n x 2^n matrix (exact method)."""
        n, g = self.n_qubits, self.graph
        z = _spins(n)
        diagonal = -(z[:, g.senders] * z[:, g.receivers]) @ np.asarray(w["J"], float)
        diagonal -= z @ self.fields(w, inputs, nudge)
        offdiagonal = np.broadcast_to(-np.asarray(w["Gamma"], float), (2**n, n))
        data = np.concatenate([diagonal[:, None], offdiagonal], axis=1).ravel()
        indptr = np.arange(0, data.size + 1, n + 1)
        return sp.csr_matrix((data, _columns(n).ravel(), indptr), shape=(2**n, 2**n))

    def mpo(self, w, inputs, nudge: SoftNudge | None = None):
        """H (+ beta C, without its constant) as a quimb MPO in qubit order (finite-state-machine
        construction of quimb's SparseOperatorBuilder)."""
        qo = _quimb("quimb.operator")

        builder = qo.SparseOperatorBuilder(hilbert_space=qo.HilbertSpace(self.n_qubits))
        for a, b, coupling in zip(self.graph.senders, self.graph.receivers, w["J"], strict=True):
            builder.add_term(-float(coupling), ("z", int(a)), ("z", int(b)))
        for i, (field, gamma) in enumerate(
            zip(self.fields(w, inputs, nudge), w["Gamma"], strict=True)
        ):
            builder.add_term(-float(field), ("z", i))
            builder.add_term(-float(gamma), ("x", i))
        return builder.build_mpo()

    # ---- ground states --------------------------------------------------------------------

    def check_nudge(self, nudge) -> None:
        if nudge is None:
            return
        if not isinstance(nudge, SoftNudge) or not isinstance(nudge.cost, MSE):
            raise TypeError(
                "the Ising network takes a SoftNudge with the MSE cost only: C = 1/2 (Z - y)^2 is "
                "a longitudinal field; a clamp of <Z> or another cost is not a Hamiltonian term."
            )
        if np.shape(nudge.target) != (self.n_outputs,):
            raise ValueError(
                f"nudge target must have shape ({self.n_outputs},), got {np.shape(nudge.target)}."
            )
        require_finite("nudge target", nudge.target)
        require_finite("nudge beta", nudge.beta)

    def solve(
        self,
        w,
        inputs: Float[ArrayLike, " n_in"],
        nudge: SoftNudge | None = None,
        x0: GroundState | None = None,
    ) -> GroundState:
        """The ground state of H(w, inputs) (+ beta C), warm-started from ``x0``. Exact solves
        warn (DegenerateGroundStateWarning) when the gap is below ``gap_tolerance``."""
        self.check_parameters(w)
        if np.shape(inputs) != (self.n_inputs,):
            raise ValueError(f"inputs must have shape ({self.n_inputs},), got {np.shape(inputs)}.")
        require_finite("inputs", inputs)
        self.check_nudge(nudge)
        constant = 0.0
        if nudge is not None:
            constant = float(nudge.beta) * 0.5 * float(np.sum(1.0 + np.square(nudge.target)))
        if self.method == "dmrg":
            return self._dmrg(w, inputs, nudge, x0, constant)
        matrix = self.matrix(w, inputs, nudge)
        with single_threaded():
            if self.n_qubits <= DENSE_QUBITS:
                values, vectors = sla.eigh(matrix.toarray(), subset_by_index=[0, 1])
            else:
                start = None if x0 is None or x0.vector is None else x0.vector
                values, vectors = spla.eigsh(matrix, k=2, which="SA", v0=start, tol=1e-13)
                order = np.argsort(values)
                values, vectors = values[order], vectors[:, order]
        gap = float(values[1] - values[0])
        if gap < self.gap_tolerance:
            warnings.warn(
                f"near-degenerate ground state: spectral gap {gap:.3g} < gap_tolerance "
                f"{self.gap_tolerance:.3g}; the ground state and the EP estimator are ill-defined "
                "(lift the degeneracy with a transverse field Gamma or a longitudinal field h).",
                DegenerateGroundStateWarning,
                stacklevel=2,
            )
        return GroundState(float(values[0]) + constant, gap, vector=vectors[:, 0])

    def _dmrg(self, w, inputs, nudge, x0, constant):
        qtn = _quimb("quimb.tensor")

        dmrg = qtn.DMRG2(
            self.mpo(w, inputs, nudge),
            bond_dims=list(self.bond_dims),
            cutoffs=self.cutoff,
            p0=None if x0 is None else x0.mps,
        )
        if not dmrg.solve(tol=self.dmrg_tol, max_sweeps=4 * len(self.bond_dims) + 10):
            warnings.warn(
                f"DMRG did not converge to dmrg_tol={self.dmrg_tol:g} with bond dimensions up to "
                f"{self.bond_dims[-1]}; raise bond_dims (the state may be near criticality).",
                RuntimeWarning,
                stacklevel=3,
            )
        return GroundState(float(np.real(dmrg.energy)) + constant, mps=dmrg.state)

    # ---- expectations, currents, outputs ----------------------------------------------------

    def expectations(
        self,
        state: GroundState,
        shots: int | None = None,
        rng: np.random.Generator | None = None,
        repeats: int | None = None,
    ) -> dict[str, np.ndarray]:
        """{Z: <Z_i> (n,), ZZ: <Z_a Z_b> (n_edges,), X: <X_i> (n,)}: exact, or estimated from
        ``shots`` projective measurements in the Z basis (giving Z and ZZ) and as many in the X
        basis, drawn with ``rng``; with ``repeats`` every entry gets a leading axis of that
        many independent estimates."""
        n, g = self.n_qubits, self.graph
        if shots is not None:
            if int(shots) < 1:
                raise ValueError(f"shots must be a positive integer, got {shots!r}.")
            if rng is None:
                raise ValueError("sampled expectations need rng=np.random.default_rng(seed).")
            if state.vector is None:
                return self._sampled_mps(state, int(shots), rng, repeats)
            z = _spins(n).astype(float)
            size = 1 if repeats is None else int(repeats)
            p_z = np.square(np.abs(state.vector))
            p_x = np.square(np.abs(hadamard_all(state.vector, n)))
            counts_z = rng.multinomial(shots, p_z / p_z.sum(), size=size)
            zz = z[:, g.senders] * z[:, g.receivers]
            out = {
                "Z": counts_z @ z / shots,
                "ZZ": counts_z @ zz / shots,
                "X": rng.multinomial(shots, p_x / p_x.sum(), size=size) @ z / shots,
            }
            return out if repeats is not None else {k: v[0] for k, v in out.items()}
        if state.vector is None:
            return self._exact_mps(state)
        psi = state.vector
        p = np.square(np.abs(psi))
        z = _spins(n)
        return {
            "Z": p @ z,
            "ZZ": p @ (z[:, g.senders] * z[:, g.receivers]),
            "X": np.real(np.conj(psi) @ psi[_columns(n)[:, 1:]]),
        }

    def _exact_mps(self, state):
        pauli_z, pauli_x = np.diag([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]])
        mps, g = state.mps, self.graph
        one = lambda op: np.array(
            [np.real(mps.local_expectation(op, (i,))) for i in range(self.n_qubits)]
        )
        zz = np.kron(pauli_z, pauli_z)
        pairs = np.array(
            [
                np.real(mps.local_expectation(zz, (int(a), int(b))))
                for a, b in zip(g.senders, g.receivers, strict=True)
            ]
        )
        return {"Z": one(pauli_z), "ZZ": pairs, "X": one(pauli_x)}

    def _sampled_mps(self, state, shots, rng, repeats):
        """Shots from the MPS by quimb's sequential sampling (Z basis; X basis after a
        Hadamard on every qubit)."""
        g = self.graph
        size = 1 if repeats is None else int(repeats)
        hadamard = np.array([[1.0, 1.0], [1.0, -1.0]]) / np.sqrt(2.0)
        rotated = state.mps.copy()
        for i in range(self.n_qubits):
            rotated.gate_(hadamard, i, contract=True)

        def draw(mps):
            seed = int(rng.integers(2**31))
            bits = np.array([c for c, _ in mps.sample(shots * size, seed=seed)])
            return (1 - 2 * bits).reshape(size, shots, self.n_qubits).astype(float)

        z, x = draw(state.mps), draw(rotated)
        out = {
            "Z": z.mean(1),
            "ZZ": (z[:, :, g.senders] * z[:, :, g.receivers]).mean(1),
            "X": x.mean(1),
        }
        return out if repeats is not None else {k: v[0] for k, v in out.items()}

    def synaptic_current(
        self, state: GroundState, w=None, inputs=None, *, shots=None, rng=None, repeats=None
    ) -> dict[str, np.ndarray]:
        """s = <dH/dtheta> = {J: -<Z_a Z_b>, h: -<Z_i>, Gamma: -<X_i>} (exact or sampled, as
        in ``expectations``); ``w`` and ``inputs`` (the AbstractNetwork signature) do not
        enter: H is linear in theta."""
        del w, inputs
        e = self.expectations(state, shots, rng, repeats)
        return {"J": -e["ZZ"], "h": -e["Z"], "Gamma": -e["X"]}

    def output(self, state: GroundState) -> np.ndarray:
        """o = <Z_o> on the output qubits."""
        return self.expectations(state)["Z"][self.output_qubits]

    def energy(self, state: GroundState, w, inputs) -> float:
        """<H(w, inputs)> in ``state`` (no nudge term)."""
        e = self.expectations(state)
        return float(
            -np.dot(w["J"], e["ZZ"])
            - np.dot(self.fields(w, inputs), e["Z"])
            - np.dot(w["Gamma"], e["X"])
        )

    def loss(self, state: GroundState, target: Float[ArrayLike, " n_out"]) -> float:
        """L = <C> = sum_o (1 + y_o^2)/2 - y_o <Z_o>."""
        y = np.asarray(target, dtype=float)
        return float(np.sum(0.5 * (1.0 + y**2) - y * self.output(state)))


def chain(n: int) -> Graph:
    """An open chain of n qubits (edges (i, i + 1))."""
    if n < 2:
        raise ValueError(f"a chain needs n >= 2 qubits, got {n}.")
    return Graph(n, np.arange(n - 1), np.arange(1, n))


def ladder(length: int) -> Graph:
    """A two-leg ladder of 2 x ``length`` qubits numbered rung by rung (qubit 2 r + leg), so the
    MPS order keeps every coupling within range 2."""
    if length < 2:
        raise ValueError(f"a ladder needs length >= 2 rungs, got {length}.")
    rungs, legs = np.arange(0, 2 * length, 2), np.arange(2 * length - 2)
    return Graph(2 * length, np.concatenate([rungs, legs]), np.concatenate([rungs + 1, legs + 2]))


def from_couplings(matrix: Float[ArrayLike, "n n"]) -> tuple[Graph, Array]:
    """(graph, J) from a coupling matrix J_ab (edges where J_ab != 0, a < b). Raises unless the
    matrix is real, square and symmetric (H Hermitian) with a zero diagonal."""
    matrix = np.asarray(matrix)
    if np.iscomplexobj(matrix):
        raise TypeError("the coupling matrix is complex; H must be Hermitian: pass real couplings.")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"the coupling matrix must be square, got shape {matrix.shape}.")
    require_finite("coupling matrix", matrix)
    asymmetry = np.abs(matrix - matrix.T).max()
    if asymmetry > 1e-12 * max(1.0, np.abs(matrix).max()):
        raise ValueError(
            f"the coupling matrix is not symmetric (max |J - J^T| = {asymmetry:.3g}): H would not "
            "be Hermitian; symmetrise it, (J + J.T) / 2."
        )
    if np.any(np.diag(matrix) != 0):
        raise ValueError("the coupling matrix has a nonzero diagonal (Z_i^2 = 1 is a constant).")
    a, b = np.nonzero(np.triu(matrix, 1))
    return Graph(matrix.shape[0], a, b), matrix[a, b].astype(float)
