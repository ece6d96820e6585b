"""Piecewise-linear circuits: resistors, ideal diodes (optionally with a series source),
independent voltage and current sources, and voltage-controlled voltage sources (VCVS);
``compile_relu`` turns a ReLU network into such a circuit (Scellier and Mishra,
arXiv:2312.15063), ``read_network`` reads a compiled circuit back as the network it
computes, and ``drn_circuit`` is a deep resistive network as a circuit (with or without
amplifiers between its layers).

Sign conventions (SPICE's). Node 0 is ground (0 V); node voltages v are measured from it.
* Resistor (a, b, g): current g (v_a - v_b) flows from a to b; g >= 0.
* Voltage source (plus, minus): v_plus - v_minus = offset + gain * inputs[input]
  (``input = -1``: a constant source).
* Current source (a, b, I): I amperes flow from a through the source into b.
* VCVS (plus, minus, control_plus, control_minus, gain):
  v_plus - v_minus = gain (v_control_plus - v_control_minus); the control draws no current.
* Ideal diode (anode, cathode) in series with a source of ``offset`` volts: its current
  i >= 0 flows from anode to cathode, its reverse voltage v_d = v_a - v_c - offset <= 0 and
  i v_d = 0 (complementarity): it conducts only when v_a - v_c reaches the offset.

Steady state (solved exactly, batched over inputs; ``Circuit.solve``):
* ``layered``: where every node is fixed by sources, by VCVS outputs or by resistors and
  diodes to already known nodes only (VCVS isolate the layers: the compiled ReLU circuits),
  the circuit is solved in order, one level at a time. A free node tied by conductances
  g_j to known voltages u_j, with injected current I, and diodes to known nodes, is a
  reciprocal one-node circuit whose exact solution is the clipped weighted mean
  v = clip((sum_j g_j u_j + I) / sum_j g_j, lo, hi), the diodes giving the bounds.
  One matrix product per level, no iteration.
* ``lcp``: any well-posed circuit. Modified nodal analysis with the diodes open,
  M z = r(inputs) - D i (z: node voltages and source currents), eliminates z and leaves the
  linear complementarity problem w = q + A i >= 0, i >= 0, i.w = 0 in the diode currents,
  with A = D^T M^-1 D and w = -v_d. It is solved exactly by block principal pivoting with
  Murty's least-index fallback (Judice and Pires, Comput. Oper. Res. 21, 587 (1994)): finite
  for every q when A is a P-matrix (all principal minors > 0), which is when the circuit has
  exactly one steady state for every input (Samelson, Thrall and Wesler, 1958). Construction
  checks that A is a P-matrix (exactly for small blocks of coupled diodes).
Without VCVS, A is the symmetric resistance matrix seen by the diodes and the steady state
minimises the co-content (the deep resistive networks, ``DiodeNetwork``); a VCVS breaks
reciprocity and there is no energy function: a ``Circuit`` is therefore not an
``AbstractNetwork`` and equilibrium propagation applies to its reciprocal parts only.
"""

import itertools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jaxtyping import Array, ArrayLike, Float, Int

from synapse_dyn._checks import concrete, require_finite
from synapse_dyn._runtime_checks import RuntimeCheckError, raise_unless_finite

from .spice import build_netlist

GROUND = 0


def _check_length(values, n):
    if np.ndim(values) > 1 or np.size(values) not in (1, n):
        raise ValueError(
            f"element fields need one value per element ({n}) or a scalar, got shape "
            f"{np.shape(values)}."
        )


def _nodes(values, n) -> np.ndarray:
    _check_length(values, n)
    return np.broadcast_to(np.asarray(values, dtype=np.int64), (n,)).copy()


def _values(values, n) -> Array:
    _check_length(values, n)
    return jnp.broadcast_to(jnp.asarray(values, dtype=float), (n,))


class Resistors(eqx.Module):
    """Resistors from node ``a`` to node ``b`` with conductances ``conductance`` (S)."""

    a: Int[np.ndarray, " n"]
    b: Int[np.ndarray, " n"]
    conductance: Float[Array, " n"]

    def __init__(self, a, b, conductance):
        n = np.size(a)
        self.a, self.b = _nodes(a, n), _nodes(b, n)
        self.conductance = _values(conductance, n)


class VoltageSources(eqx.Module):
    """v_plus - v_minus = offset + gain * inputs[input]; ``input = -1`` for a constant."""

    plus: Int[np.ndarray, " n"]
    minus: Int[np.ndarray, " n"]
    offset: Float[Array, " n"]
    gain: Float[Array, " n"]
    input: Int[np.ndarray, " n"]

    def __init__(self, plus, minus, offset=0.0, gain=0.0, input=-1):
        n = np.size(plus)
        self.plus, self.minus = _nodes(plus, n), _nodes(minus, n)
        self.offset, self.gain = _values(offset, n), _values(gain, n)
        self.input = _nodes(input, n)

    def values(self, inputs: Float[Array, "batch n_in"]) -> Float[Array, "batch n"]:
        """Source voltages for a batch of ``inputs``."""
        if self.plus.size == 0:
            return jnp.zeros((inputs.shape[0], 0))
        x = jnp.where(self.input[None] >= 0, inputs[:, jnp.maximum(self.input, 0)], 0.0)
        return self.offset[None] + self.gain[None] * x


class CurrentSources(eqx.Module):
    """``current`` amperes from node ``a`` through the source into node ``b``."""

    a: Int[np.ndarray, " n"]
    b: Int[np.ndarray, " n"]
    current: Float[Array, " n"]

    def __init__(self, a, b, current):
        n = np.size(a)
        self.a, self.b = _nodes(a, n), _nodes(b, n)
        self.current = _values(current, n)


class VCVS(eqx.Module):
    """v_plus - v_minus = gain (v_control_plus - v_control_minus)."""

    plus: Int[np.ndarray, " n"]
    minus: Int[np.ndarray, " n"]
    control_plus: Int[np.ndarray, " n"]
    control_minus: Int[np.ndarray, " n"]
    gain: Float[Array, " n"]

    def __init__(self, plus, minus, control_plus, control_minus, gain):
        n = np.size(plus)
        self.plus, self.minus = _nodes(plus, n), _nodes(minus, n)
        self.control_plus, self.control_minus = _nodes(control_plus, n), _nodes(control_minus, n)
        self.gain = _values(gain, n)


class Diodes(eqx.Module):
    """Ideal diodes from ``anode`` to ``cathode``, each in series with a source of ``offset``
    volts (it conducts when v_anode - v_cathode reaches the offset)."""

    anode: Int[np.ndarray, " n"]
    cathode: Int[np.ndarray, " n"]
    offset: Float[Array, " n"]

    def __init__(self, anode, cathode, offset=0.0):
        n = np.size(anode)
        self.anode, self.cathode = _nodes(anode, n), _nodes(cathode, n)
        self.offset = _values(offset, n)


class Solution(eqx.Module):
    """A steady state: node voltages (ground included, index 0) and diode currents."""

    v: Float[Array, "... n_nodes"]
    diode_currents: Float[Array, "... n_diodes"]


class _Level(eqx.Module):
    """One step of the layered solve: sources and amplifiers whose reference terminal is
    known set their other terminal; then the free nodes tied only to known nodes."""

    source: Int[np.ndarray, " k"]  # voltage sources resolved now
    source_set: Int[np.ndarray, " k"]
    source_ref: Int[np.ndarray, " k"]
    source_sign: Float[np.ndarray, " k"]
    amp: Int[np.ndarray, " m"]
    amp_set: Int[np.ndarray, " m"]
    amp_ref: Int[np.ndarray, " m"]
    amp_sign: Float[np.ndarray, " m"]
    free: Int[np.ndarray, " f"]  # free nodes solved now
    boundary: Int[np.ndarray, " b"]  # the known nodes they are tied to
    resistor: Int[np.ndarray, " r"]  # resistors between them, with local (row, col)
    row: Int[np.ndarray, " r"]
    col: Int[np.ndarray, " r"]
    lower: Int[np.ndarray, "f kl"]  # diodes bounding the node from below (-1 = none)
    upper: Int[np.ndarray, "f ku"]


def _element_names(prefix: str, indices) -> str:
    return ", ".join(f"{prefix}{int(k)}" for k in indices)


class Circuit(eqx.Module):
    """A circuit of ``n_nodes`` nodes (0 = ground) and element groups, read out at
    ``outputs`` (node indices), driven by ``n_inputs`` input values through its voltage
    sources. Validated at construction (module docstring for the conventions)."""

    n_nodes: int = eqx.field(static=True)
    n_inputs: int = eqx.field(static=True)
    resistors: Resistors
    voltage_sources: VoltageSources
    current_sources: CurrentSources
    vcvs: VCVS
    diodes: Diodes
    outputs: Int[np.ndarray, " n_out"]
    levels: tuple[_Level, ...] | None

    def __init__(
        self,
        n_nodes: int,
        n_inputs: int,
        outputs,
        resistors: Resistors | None = None,
        voltage_sources: VoltageSources | None = None,
        current_sources: CurrentSources | None = None,
        vcvs: VCVS | None = None,
        diodes: Diodes | None = None,
    ):
        empty = np.zeros(0, np.int64)
        self.n_nodes, self.n_inputs = int(n_nodes), int(n_inputs)
        self.resistors = Resistors(empty, empty, []) if resistors is None else resistors
        self.voltage_sources = (
            VoltageSources(empty, empty) if voltage_sources is None else voltage_sources
        )
        self.current_sources = (
            CurrentSources(empty, empty, []) if current_sources is None else current_sources
        )
        self.vcvs = VCVS(empty, empty, empty, empty, []) if vcvs is None else vcvs
        self.diodes = Diodes(empty, empty) if diodes is None else diodes
        self.outputs = np.asarray(outputs, dtype=np.int64).ravel()
        self._check_structure()
        self.levels = self._plan()
        if self.levels is None:
            self._check_well_posed()

    # ---- validation -------------------------------------------------------------------

    def _check_structure(self):
        n = self.n_nodes
        if n < 2 or self.n_inputs < 0:
            raise ValueError(f"a circuit needs n_nodes >= 2 (ground is node 0), got {n}.")
        groups = {
            "R": (self.resistors, ("a", "b")),
            "V": (self.voltage_sources, ("plus", "minus")),
            "I": (self.current_sources, ("a", "b")),
            "E": (self.vcvs, ("plus", "minus", "control_plus", "control_minus")),
            "D": (self.diodes, ("anode", "cathode")),
        }
        for prefix, (group, fields) in groups.items():
            for field in fields:
                nodes = getattr(group, field)
                bad = np.flatnonzero((nodes < 0) | (nodes >= n))
                if bad.size:
                    raise ValueError(
                        f"{_element_names(prefix, bad[:5])}: {field} node "
                        f"{int(nodes[bad[0]])} is not a node of the circuit (0 .. {n - 1})."
                    )
            same = np.flatnonzero(getattr(group, fields[0]) == getattr(group, fields[1]))
            if same.size and prefix != "R":
                raise ValueError(
                    f"{_element_names(prefix, same[:5])} connects node "
                    f"{int(getattr(group, fields[0])[same[0]])} to itself; remove it."
                )
        bad = self.outputs[(self.outputs < 0) | (self.outputs >= n)]
        if bad.size or self.outputs.size == 0:
            raise ValueError(f"outputs must be >= 1 node indices in 0 .. {n - 1}, got {bad}.")
        inputs = self.voltage_sources.input
        bad = np.flatnonzero((inputs < -1) | (inputs >= self.n_inputs))
        if bad.size:
            raise ValueError(
                f"{_element_names('V', bad[:5])}: input index {int(inputs[bad[0]])} is not "
                f"in -1 (constant) .. {self.n_inputs - 1}."
            )
        for name, value in (
            ("resistor conductances", self.resistors.conductance),
            ("voltage source offsets", self.voltage_sources.offset),
            ("voltage source gains", self.voltage_sources.gain),
            ("current source currents", self.current_sources.current),
            ("VCVS gains", self.vcvs.gain),
            ("diode offsets", self.diodes.offset),
        ):
            require_finite(name, value)
        g = concrete(self.resistors.conductance)
        if g is not None and np.any(g < 0):
            bad = np.flatnonzero(g < 0)
            raise ValueError(
                f"{_element_names('R', bad[:5])} has negative conductance {g[bad[0]]!r} "
                f"(nodes {int(self.resistors.a[bad[0]])}-{int(self.resistors.b[bad[0]])}); "
                "conductances must be >= 0."
            )
        active = np.ones(g.size if g is not None else self.resistors.a.size, bool)
        if g is not None:
            active = g > 0
        # nodes without a diode-free path to ground float when the diodes block
        edges = [
            (self.resistors.a[active], self.resistors.b[active]),
            (self.voltage_sources.plus, self.voltage_sources.minus),
            (self.vcvs.plus, self.vcvs.minus),
        ]
        labels = _components(n, edges)
        floating = np.flatnonzero(labels != labels[GROUND])
        if floating.size:
            cut = np.isin(self.diodes.anode, floating) | np.isin(self.diodes.cathode, floating)
            if np.any(cut):
                raise ValueError(
                    f"nodes {floating[:10].tolist()} reach ground only through diodes "
                    f"{_element_names('D', np.flatnonzero(cut)[:10])} (diodes in series with "
                    "no other element at the node between them): their voltage is undetermined "
                    "when the diodes block; add a resistor to a fixed node."
                )
            raise ValueError(
                f"nodes {floating[:10].tolist()} float: no path of resistors (g > 0), voltage "
                "sources or VCVS outputs joins them to ground; connect or remove them."
            )
        # a diode across voltage sources alone has no resistance in its loop
        fixed = _components(n, edges[1:])
        across = np.flatnonzero(fixed[self.diodes.anode] == fixed[self.diodes.cathode])
        if across.size:
            k = int(across[0])
            raise ValueError(
                f"{_element_names('D', across[:5])} lies across voltage sources and VCVS outputs "
                f"alone (nodes {int(self.diodes.anode[k])}-{int(self.diodes.cathode[k])}): "
                "nothing limits its current when forward biased; put a resistor in series."
            )

    def _plan(self) -> tuple[_Level, ...] | None:
        """The levels of the layered solve, or None when the circuit is not layered."""
        n = self.n_nodes
        known = np.zeros(n, bool)
        known[GROUND] = True
        src, amp, diodes = self.voltage_sources, self.vcvs, self.diodes
        driven = np.zeros(n, bool)
        for group in (src, amp):
            driven[group.plus] = driven[group.minus] = True
        res = self.resistors
        src_done = np.zeros(src.plus.size, bool)
        amp_done = np.zeros(amp.plus.size, bool)
        levels = []
        while not known.all():
            new = []
            for group, done, controls in (
                (src, src_done, None),
                (amp, amp_done, (amp.control_plus, amp.control_minus)),
            ):
                ready = ~done & (known[group.plus] | known[group.minus])
                if controls is not None:
                    ready &= known[controls[0]] & known[controls[1]]
                both = ready & known[group.plus] & known[group.minus]
                if both.any():
                    prefix = "V" if group is src else "E"
                    raise ValueError(
                        f"{_element_names(prefix, np.flatnonzero(both)[:5])} closes a loop of "
                        "voltage sources and VCVS outputs (both terminals are already fixed): "
                        "the circuit has no or many solutions; remove one source of the loop."
                    )
                k = np.flatnonzero(ready)
                plus_known = known[group.plus[k]]
                new.append(
                    (
                        k,
                        np.where(plus_known, group.minus[k], group.plus[k]),
                        np.where(plus_known, group.plus[k], group.minus[k]),
                        np.where(plus_known, -1.0, 1.0),
                    )
                )
            targets = np.concatenate([t for _, t, _, _ in new])
            if np.unique(targets).size != targets.size:
                twice = np.flatnonzero(np.bincount(targets) > 1)[0]
                names = ", ".join(
                    _element_names(prefix, k[t == twice])
                    for prefix, (k, t, _, _) in zip("VE", new, strict=True)
                )
                raise ValueError(
                    f"{names.strip(', ')} all set node {twice}: a loop of voltage sources and "
                    "VCVS outputs with no or many solutions; remove one of them."
                )
            for (k, target, _, _), done in zip(new, (src_done, amp_done), strict=True):
                done[k] = True
                known[target] = True
            # free nodes whose resistor and diode neighbours are all known
            candidate = ~known & ~driven
            for a, b in ((res.a, res.b), (res.b, res.a), (diodes.anode, diodes.cathode)):
                blocked = candidate[a] & ~known[b]
                candidate[a[blocked]] = False
            for a, b in ((diodes.cathode, diodes.anode),):
                candidate[a[candidate[a] & ~known[b]]] = False
            free = np.flatnonzero(candidate)
            if free.size == 0 and not any(k.size for k, *_ in new):
                return None
            levels.append(self._level(new, free, known))
            known[free] = True
        return tuple(levels)

    def _level(self, new, free, known) -> _Level:
        res, diodes = self.resistors, self.diodes
        slot = np.full(self.n_nodes, -1)
        slot[free] = np.arange(free.size)
        ends = [(res.a, res.b), (res.b, res.a)]
        touching = [np.flatnonzero(slot[a] >= 0) for a, _ in ends]
        boundary = np.unique(
            np.concatenate([b[t] for (_, b), t in zip(ends, touching, strict=True)])
        )
        column = np.full(self.n_nodes, -1)
        column[boundary] = np.arange(boundary.size)
        row = np.concatenate([slot[a[t]] for (a, _), t in zip(ends, touching, strict=True)])
        col = np.concatenate([column[b[t]] for (_, b), t in zip(ends, touching, strict=True)])
        resistor = np.concatenate(touching)

        def padded(node):
            index = np.flatnonzero(slot[node] >= 0)
            rows = slot[node[index]]
            width = np.bincount(rows, minlength=free.size).max(initial=0)
            table = np.full((free.size, width), -1)
            order = np.argsort(rows, kind="stable")
            rank = np.arange(index.size) - np.searchsorted(rows[order], rows[order])
            table[rows[order], rank] = index[order]
            return table

        (src, src_set, src_ref, src_sign), (amp, amp_set, amp_ref, amp_sign) = new
        return _Level(
            src,
            src_set,
            src_ref,
            src_sign,
            amp,
            amp_set,
            amp_ref,
            amp_sign,
            free,
            boundary,
            resistor,
            row,
            col,
            padded(diodes.cathode),
            padded(diodes.anode),
        )

    def _check_well_posed(self):
        """Singular nodal equations (VCVS or source loops) and a diode matrix that is not a
        P-matrix (several or no steady states for some inputs) raise, naming the elements."""
        values = concrete(self.resistors.conductance)
        if values is None or concrete(self.vcvs.gain) is None:
            return  # traced values: checked when solved
        M, D, _, _ = (np.asarray(a) for a in _mna(self))
        u, s, vt = np.linalg.svd(M)
        if s[-1] <= 1e-12 * s[0]:
            n = self.n_nodes - 1
            weight = np.abs(u[:, -1])
            involved = weight > 1e-6 * weight.max()
            sources = np.flatnonzero(involved[n : n + self.voltage_sources.plus.size])
            amps = np.flatnonzero(involved[n + self.voltage_sources.plus.size :])
            names = ", ".join(
                filter(None, [_element_names("E", amps), _element_names("V", sources)])
            )
            raise ValueError(
                f"the circuit's equations are singular: {names or 'its resistors'} "
                "form a loop whose gain makes it ill-posed (no or infinitely many steady "
                "states); change a gain or break the loop."
            )
        A = D.T @ np.linalg.solve(M, D)
        scale = np.abs(A).max(initial=0.0)
        tol = 1e-12 * max(scale, 1e-300)
        small = np.flatnonzero(np.abs(np.diag(A)) <= tol)
        if small.size:
            raise ValueError(
                f"{_element_names('D', small[:5])} sees no resistance (it closes a loop of "
                "sources, amplifiers and diodes only): its current is unbounded when forward "
                "biased; put a resistor in series."
            )
        _, labels = sp.csgraph.connected_components(
            sp.csr_matrix(np.abs(A) > tol), directed=True, connection="strong"
        )
        for block in np.unique(labels):
            idx = np.flatnonzero(labels == block)
            B = A[np.ix_(idx, idx)]
            if np.linalg.eigvalsh(0.5 * (B + B.T)).min() > tol:
                continue  # positive definite symmetric part: a P-matrix
            if idx.size > 12:
                warnings.warn(
                    f"diodes {_element_names('D', idx[:10])}... couple through VCVS in a block "
                    f"of {idx.size}: uniqueness of the steady state was not verified.",
                    stacklevel=3,
                )
                continue
            for size in range(1, idx.size + 1):
                for subset in itertools.combinations(range(idx.size), size):
                    det = np.linalg.det(B[np.ix_(subset, subset)])
                    if det <= tol ** (size / 2) * scale ** (size / 2):
                        diodes = _element_names("D", idx[list(subset)])
                        amps = self._feedback_amplifiers(idx[list(subset)])
                        raise ValueError(
                            f"diodes {diodes} with amplifiers {amps or '(none)'} make the "
                            f"circuit ill-posed: principal minor {det:.3g} <= 0 of the diode "
                            "matrix, so some inputs give no or several steady states; lower "
                            "the VCVS gains of the feedback loop."
                        )

    def _feedback_amplifiers(self, diodes) -> str:
        """The VCVS whose removal (gain 0) makes the diodes' minor positive."""
        names = []
        for k in range(self.vcvs.plus.size):
            trial = eqx.tree_at(lambda c: c.vcvs.gain, self, self.vcvs.gain.at[k].set(0.0))
            M, D, _, _ = (np.asarray(a) for a in _mna(trial))
            A = (D.T @ np.linalg.solve(M, D))[np.ix_(diodes, diodes)]
            if np.linalg.det(A) > 0:
                names.append(f"E{k}")
        return ", ".join(names)

    # ---- modified nodal analysis --------------------------------------------------------

    def mna(self):
        """(M, D, r0, R): M z + D i = r0 + R inputs over z = (node voltages without ground,
        voltage-source currents, VCVS currents), source currents flowing from plus through
        the source to minus; D has +1 at the anode row, -1 at the cathode row."""
        n, src, amp, res = self.n_nodes, self.voltage_sources, self.vcvs, self.resistors
        ns, na = src.plus.size, amp.plus.size
        size = n + ns + na
        rs, ra = n + np.arange(ns), n + ns + np.arange(na)
        g = res.conductance
        rows = [res.a, res.b, res.a, res.b]
        cols = [res.a, res.b, res.b, res.a]
        vals = [g, g, -g, -g]
        for r, group, extra in ((rs, src, None), (ra, amp, True)):
            one = jnp.ones(r.size)
            rows += [group.plus, group.minus, r, r]
            cols += [r, r, group.plus, group.minus]
            vals += [one, -one, one, -one]
            if extra:
                rows += [r, r]
                cols += [group.control_plus, group.control_minus]
                vals += [-group.gain, group.gain]
        M = (
            jnp.zeros((size, size))
            .at[jnp.concatenate(rows), jnp.concatenate(cols)]
            .add(jnp.concatenate(vals))
        )
        nd = self.diodes.anode.size
        D = (
            jnp.zeros((size, nd))
            .at[self.diodes.anode, np.arange(nd)]
            .add(1.0)
            .at[self.diodes.cathode, np.arange(nd)]
            .add(-1.0)
        )
        cur = self.current_sources
        r0 = (
            jnp.zeros(size)
            .at[cur.a]
            .add(-cur.current)
            .at[cur.b]
            .add(cur.current)
            .at[rs]
            .add(src.offset)
        )
        driven = src.input >= 0
        R = (
            jnp.zeros((size, self.n_inputs))
            .at[rs, jnp.where(driven, src.input, 0)]
            .add(jnp.where(driven, src.gain, 0.0))
        )
        keep = np.arange(1, size)  # ground's row and column go
        return M[np.ix_(keep, keep)], D[keep], r0[keep], R[keep]

    # ---- solving --------------------------------------------------------------------------

    @property
    def layered(self) -> bool:
        """True when VCVS and sources isolate the free nodes into levels (``method="layered"``)."""
        return self.levels is not None

    def solve(self, inputs: Float[ArrayLike, "... n_in"], method: str = "auto") -> Solution:
        """The exact steady state for ``inputs`` (any leading batch shape): ``"layered"``,
        ``"lcp"``, or ``"auto"`` (layered when possible). Module docstring for both."""
        if method not in ("auto", "layered", "lcp"):
            raise ValueError(f'method must be "auto", "layered" or "lcp", got {method!r}.')
        if method == "layered" and not self.layered:
            raise ValueError(
                "this circuit is not layered (some free node is tied to another free node); "
                'use method="lcp".'
            )
        shape = np.shape(inputs)
        if not shape or shape[-1] != self.n_inputs:
            raise ValueError(
                f"inputs must have shape (..., {self.n_inputs}), got {shape}; one value per "
                "circuit input."
            )
        require_finite("inputs", inputs)
        x = jnp.asarray(inputs, dtype=float).reshape(-1, self.n_inputs)
        layered = self.layered and method != "lcp"
        solution, ok = _solve(self, x, layered)
        if not bool(ok):
            raise RuntimeCheckError(_FAILURES[layered])
        raise_unless_finite(
            solution.v,
            "the circuit's steady state is not finite (an input is NaN or the equations are "
            "singular).",
        )
        return jax.tree.map(lambda a: a.reshape(*shape[:-1], a.shape[-1]), solution)

    def __call__(self, inputs: Float[ArrayLike, "... n_in"]) -> Float[Array, "... n_out"]:
        """Output node voltages for ``inputs``."""
        return self.solve(inputs).v[..., self.outputs]

    def _layered(self, x):
        batch = x.shape[0]
        v = jnp.zeros((batch, self.n_nodes))
        i = jnp.zeros((batch, self.diodes.anode.size))
        cur = self.current_sources
        injected = jnp.zeros(self.n_nodes).at[cur.b].add(cur.current).at[cur.a].add(-cur.current)
        sources = self.voltage_sources.values(x)
        res, amp, diodes = self.resistors, self.vcvs, self.diodes
        ok = jnp.ones((), bool)
        for level in self.levels:
            if level.source.size:
                value = sources[:, level.source]
                v = v.at[:, level.source_set].set(
                    v[:, level.source_ref] + level.source_sign[None] * value
                )
            if level.amp.size:
                k = level.amp
                value = amp.gain[k][None] * (v[:, amp.control_plus[k]] - v[:, amp.control_minus[k]])
                v = v.at[:, level.amp_set].set(v[:, level.amp_ref] + level.amp_sign[None] * value)
            if level.free.size == 0:
                continue
            G = (
                jnp.zeros((level.free.size, level.boundary.size))
                .at[level.row, level.col]
                .add(res.conductance[level.resistor])
            )
            curvature = jnp.sum(G, axis=1)
            drive = v[:, level.boundary] @ G.T + injected[level.free][None]
            mean = drive / curvature[None]
            # diode bounds: cathode here -> v >= v_anode - E; anode here -> v <= v_cathode + E
            lo_table, hi_table = level.lower, level.upper
            lo = _bound(v, lo_table, diodes.anode, -diodes.offset, -jnp.inf)
            hi = _bound(v, hi_table, diodes.cathode, diodes.offset, jnp.inf)
            ok &= jnp.all(lo <= hi)
            node = jnp.clip(mean, lo, hi)
            v = v.at[:, level.free].set(node)
            excess = drive - curvature[None] * node  # current into the node, carried by a diode
            for table, bound, sign, pick in (
                (lo_table, lo, -1.0, jnp.argmax),
                (hi_table, hi, 1.0, jnp.argmin),
            ):
                if table.shape[1] == 0:
                    continue
                values = jnp.where(table[None] >= 0, _ends(v, table, diodes, sign), sign * jnp.inf)
                which = jnp.take_along_axis(
                    jnp.broadcast_to(table, values.shape), pick(values, axis=-1)[..., None], -1
                )[..., 0]
                current = jnp.where(node == bound, jnp.maximum(sign * excess, 0.0), 0.0)
                rows = jnp.arange(batch)[:, None]
                i = i.at[rows, jnp.maximum(which, 0)].add(jnp.where(which >= 0, current, 0.0))
        return Solution(v, i), ok

    def _lcp(self, x):
        M, D, r0, R = self.mna()
        K = jnp.linalg.solve(M, jnp.concatenate([D, r0[:, None], R], axis=1))
        nd = D.shape[1]
        KD, k0, KR = K[:, :nd], K[:, nd], K[:, nd + 1 :]
        A = D.T @ KD
        q = (self.diodes.offset - D.T @ k0)[None] - x @ (D.T @ KR).T
        i, converged = jax.vmap(lambda qq: _lcp_solve(A, qq))(q)
        z = k0[None] + x @ KR.T - i @ KD.T
        v = jnp.concatenate([jnp.zeros((x.shape[0], 1)), z[:, : self.n_nodes - 1]], axis=1)
        return Solution(v, i), jnp.all(converged)

    # ---- checks of a solution -----------------------------------------------------------

    def diode_voltages(
        self, v: Float[ArrayLike, "... n_nodes"]
    ) -> Float[np.ndarray, "... n_diodes"]:
        """Reverse voltages v_d = v_anode - v_cathode - offset (<= 0 at a steady state)."""
        d, v = self.diodes, np.asarray(v)
        return v[..., d.anode] - v[..., d.cathode] - np.asarray(d.offset)

    def kcl_residual(self, solution: Solution) -> Float[np.ndarray, "... n_nodes"]:
        """Net current leaving each node through resistors, current sources and diodes;
        zero at a steady state except at terminals of voltage sources and VCVS (set to 0
        there, where the source currents balance it)."""
        v = np.asarray(solution.v)
        i = np.asarray(solution.diode_currents)
        res, cur, d = self.resistors, self.current_sources, self.diodes
        flow = np.asarray(res.conductance) * (v[..., res.a] - v[..., res.b])
        current = np.asarray(cur.current)
        out = np.zeros(v.shape)
        np.add.at(out.T, res.a, flow.T)
        np.add.at(out.T, res.b, -flow.T)
        np.add.at(out.T, cur.a, current[:, None] if v.ndim > 1 else current)
        np.add.at(out.T, cur.b, -current[:, None] if v.ndim > 1 else -current)
        np.add.at(out.T, d.anode, i.T)
        np.add.at(out.T, d.cathode, -i.T)
        driven = np.zeros(self.n_nodes, bool)
        for group in (self.voltage_sources, self.vcvs):
            driven[group.plus] = driven[group.minus] = True
        driven[GROUND] = True
        return np.where(driven, 0.0, out)

    # ---- SPICE --------------------------------------------------------------------------

    def to_spice(self, inputs: Float[ArrayLike, " n_in"], emission: float = 1e-4) -> str:
        """A SPICE netlist (R, V, I, E and D elements) with an operating-point analysis; node
        k is ``n{k}``, ground ``0``. Ideal diodes are the SPICE diode with IS = 1e-14 A and
        emission coefficient ``emission``: forward drop N V_T ln(1 + I / IS), 8e-5 V at 1 A
        for N = 1e-4 (``spice.diode_forward_drop``)."""
        if np.shape(inputs) != (self.n_inputs,):
            raise ValueError(f"inputs must have shape ({self.n_inputs},), got {np.shape(inputs)}.")
        require_finite("inputs", inputs)
        name = lambda k: "0" if k == GROUND else f"n{int(k)}"
        res, src, cur, amp, d = (
            self.resistors,
            self.voltage_sources,
            self.current_sources,
            self.vcvs,
            self.diodes,
        )
        g = np.asarray(res.conductance, float)
        on = g > 0
        values = np.asarray(src.values(jnp.asarray(inputs, float)[None]))[0]
        return build_netlist(
            "circuit",
            [
                (name(a), name(b), 1.0 / c)
                for a, b, c in zip(res.a[on], res.b[on], g[on], strict=True)
            ],
            [(name(p), name(m), v) for p, m, v in zip(src.plus, src.minus, values, strict=True)],
            [
                (name(a), name(b), c)
                for a, b, c in zip(cur.a, cur.b, np.asarray(cur.current), strict=True)
            ],
            [
                (name(a), name(c), e)
                for a, c, e in zip(d.anode, d.cathode, np.asarray(d.offset), strict=True)
            ],
            vcvs=[
                (name(p), name(m), name(cp), name(cm), k)
                for p, m, cp, cm, k in zip(
                    amp.plus,
                    amp.minus,
                    amp.control_plus,
                    amp.control_minus,
                    np.asarray(amp.gain),
                    strict=True,
                )
            ],
            emission=emission,
        )


def _components(n, edges) -> np.ndarray:
    a = np.concatenate([e[0] for e in edges])
    b = np.concatenate([e[1] for e in edges])
    graph = sp.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    return sp.csgraph.connected_components(graph, directed=False)[1]


def _ends(v, table, diodes, sign):
    """Per padded diode: the bound it sets (sign -1: lower, v_anode - E; +1: upper,
    v_cathode + E)."""
    k = jnp.maximum(table, 0)
    if sign < 0:
        return v[:, diodes.anode[k]] - diodes.offset[k][None]
    return v[:, diodes.cathode[k]] + diodes.offset[k][None]


def _bound(v, table, other, shift, empty):
    if table.shape[1] == 0:
        return jnp.full((v.shape[0], table.shape[0]), empty)
    k = jnp.maximum(table, 0)
    values = jnp.where(table[None] >= 0, v[:, other[k]] + shift[k][None], empty)
    return jnp.max(values, axis=-1) if empty < 0 else jnp.min(values, axis=-1)


_mna = eqx.filter_jit(lambda circuit: circuit.mna())
# (Solution, whether it is valid) by the layered method (True) or the LCP (False)
_solve = eqx.filter_jit(lambda c, x, layered: c._layered(x) if layered else c._lcp(x))
_FAILURES = {
    True: "two diodes at one node conduct in series between fixed voltages (lower bound above "
    "upper bound): nothing limits their current for these inputs.",
    False: "the diode complementarity problem did not converge: the circuit is ill-posed (its "
    "diode matrix is not a P-matrix) or badly conditioned.",
}


def _lcp_solve(A, q, patience: int = 3):
    """w = q + A i >= 0, i >= 0, i.w = 0 by block principal pivoting: the set of conducting
    diodes flips every infeasible index while their number reaches new lows; after
    ``patience`` steps without one, single flips of the least infeasible index (Murty's
    method, finite for P-matrices) until it does (Judice and Pires 1994). The lowest count
    falls at most n times, so the method is finite whenever Murty's is. Returns (i, whether
    it converged)."""
    n = q.size
    if n == 0:
        return q, jnp.asarray(True)
    tol = 1e-11 * (1.0 + jnp.max(jnp.abs(q), initial=0.0))

    def complementary(on):
        m = on.astype(q.dtype)
        B = m[:, None] * A * m[None, :] + jnp.diag(1.0 - m)
        i = jax.scipy.linalg.lu_solve(jax.scipy.linalg.lu_factor(B), -m * q)
        return i, q + A @ i

    def infeasible(on):
        i, w = complementary(on)
        return jnp.where(on, i < -tol, w < -tol)

    def step(state):
        on, bad, best, chances, steps = state
        count = jnp.sum(bad)
        improved = count < best
        best = jnp.minimum(best, count)
        chances = jnp.where(improved, patience, chances - 1)
        first = jnp.arange(n) == jnp.argmax(bad)
        on = on ^ jnp.where(chances < 0, first & bad, bad)
        return on, infeasible(on), best, chances, steps + 1

    on = q < 0
    state = (on, infeasible(on), n + 1, patience, 0)
    on, bad, *_ = jax.lax.while_loop(lambda s: jnp.any(s[1]) & (s[4] < 50 + 20 * n), step, state)
    return complementary(on)[0], ~jnp.any(bad)


# ---- ReLU networks <-> circuits ------------------------------------------------------------


def _mlp_layers(mlp) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W, b)] of a list of (W, b) pairs or an ``eqx.nn.MLP`` with ReLU hidden activations
    and a linear output."""
    if isinstance(mlp, eqx.nn.MLP):
        probe = jnp.linspace(-2.0, 2.0, 9)
        if not np.allclose(mlp.activation(probe), jax.nn.relu(probe)):
            raise ValueError("compile_relu needs an MLP with ReLU activations (jax.nn.relu).")
        if not np.allclose(mlp.final_activation(probe), probe):
            raise ValueError("compile_relu needs an MLP with a linear (identity) output.")
        return [
            (
                np.asarray(layer.weight, float),
                np.zeros(layer.out_features)
                if layer.bias is None
                else np.asarray(layer.bias, float),
            )
            for layer in mlp.layers
        ]
    layers = [(np.asarray(W, float), np.asarray(b, float)) for W, b in mlp]
    if not layers:
        raise ValueError("the network has no layers; pass a list of (W, b) pairs.")
    fan_in = layers[0][0].shape[1] if layers[0][0].ndim == 2 else None
    for k, (W, b) in enumerate(layers):
        if W.ndim != 2 or b.shape != (W.shape[0],) or W.shape[1] != fan_in:
            raise ValueError(
                f"layer {k}: W must be (n_out, {fan_in}) and b (n_out,), got {W.shape} and "
                f"{b.shape}."
            )
        require_finite(f"layer {k} weights", W)
        require_finite(f"layer {k} biases", b)
        fan_in = W.shape[0]
    return layers


def compile_relu(mlp, amplifiers: bool = True, bias_voltage: float = 1.0) -> Circuit:
    """The circuit of a ReLU network y = W_L relu(... relu(W_1 x + b_1) ...) + b_L
    (Scellier and Mishra, arXiv:2312.15063), from a list of (W, b) or an ``eqx.nn.MLP``.

    Every signal comes with its negative: input sources at +x and -x, constant sources at
    +-``bias_voltage``. Hidden unit i has two summing nodes, s+ for (W_i, b_i) and s- for
    (-W_i, -b_i): each is tied by a conductance |w| to the signal of sign(w) (and |b| /
    bias_voltage to a bias source), so it sits at the weighted mean z / G with
    G = sum_j |W_ij| + |b_i| / bias_voltage; a diode to ground makes s+ = relu(z) / G and the
    reversed diode s- = -relu(z) / G. A VCVS of gain G restores the scale, giving the signals
    +-relu(z) of the next layer, and draws no current, so layer l + 1 does not load layer l.
    Outputs: one summing node per output (no diode) and its VCVS, at y.
    With ``amplifiers=False`` the VCVS are replaced by direct connections: the next layer
    and the outputs tie to the summing nodes themselves (a plain deep resistive network,
    which does not compute the MLP). A summing node with no conductance gets 1 S to ground.
    """
    layers = _mlp_layers(mlp)
    n_in = layers[0][0].shape[1]
    nodes = iter(range(1, 2**62))
    take = lambda n: np.array([next(nodes) for _ in range(n)], dtype=np.int64)
    bias = take(2)  # +V, -V
    x_plus, x_minus = take(n_in), take(n_in)
    src_plus = np.concatenate([bias, x_plus, x_minus])
    src_offset = np.concatenate([[bias_voltage, -bias_voltage], np.zeros(2 * n_in)])
    src_gain = np.concatenate([[0.0, 0.0], np.ones(n_in), -np.ones(n_in)])
    src_input = np.concatenate([[-1, -1], np.arange(n_in), np.arange(n_in)])
    res_a, res_b, res_g, amp, diode_a, diode_c = [], [], [], [], [], []
    plus, minus = x_plus, x_minus  # the signals +h and -h of the previous layer
    for depth, (W, b) in enumerate(layers):
        hidden = depth < len(layers) - 1
        signs = (1.0, -1.0) if hidden else (1.0,)
        outs = []
        for sign in signs:
            s = take(W.shape[0])
            w = sign * np.concatenate([W, b[:, None] / bias_voltage], axis=1)
            up = np.concatenate([plus, bias[:1]])
            down = np.concatenate([minus, bias[1:]])
            rows, cols = np.nonzero(w)
            res_a.append(s[rows])
            res_b.append(np.where(w[rows, cols] > 0, up[cols], down[cols]))
            res_g.append(np.abs(w[rows, cols]))
            total = np.abs(w).sum(axis=1)
            dead = total == 0
            res_a.append(s[dead])
            res_b.append(np.zeros(dead.sum(), np.int64))
            res_g.append(np.ones(dead.sum()))
            total[dead] = 1.0
            if hidden:
                diode_a.append(np.zeros_like(s) if sign > 0 else s)
                diode_c.append(s if sign > 0 else np.zeros_like(s))
            if amplifiers:
                h = take(W.shape[0])
                amp.append((h, s, total))
                outs.append(h)
            else:
                outs.append(s)
        plus, minus = outs[0], outs[-1]
    cat = lambda parts, dtype=np.int64: np.concatenate(parts) if parts else np.zeros(0, dtype)
    n_nodes = next(nodes)
    zeros = lambda a: np.zeros_like(a)
    h = cat([a for a, _, _ in amp])
    return Circuit(
        n_nodes,
        n_in,
        plus,
        Resistors(cat(res_a), cat(res_b), cat(res_g, float)),
        VoltageSources(src_plus, zeros(src_plus), src_offset, src_gain, src_input),
        vcvs=VCVS(
            h, zeros(h), cat([c for _, c, _ in amp]), zeros(h), cat([g for *_, g in amp], float)
        ),
        diodes=Diodes(cat(diode_a), cat(diode_c)),
    )


def read_network(circuit: Circuit, atol: float = 1e-12) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ReLU network [(W, b)] a layered circuit computes, read from its elements.

    Each summing node s (a free node of the layered solve) drives one VCVS of gain A to
    ground, h = A s, and sits at the weighted mean of the known voltages u_k it is tied to:
    its pre-activation is z = (A / sum_k g_k) sum_k g_k u_k, with h = relu(z) (diode from
    ground), -relu(-z) (reversed diode) or z (none). Voltages are affine in the inputs and in
    the previous h's; a unit -relu(-z) equals -relu(z') with z' = -z, and units with equal z
    are one unit: merging them gives the minimal ReLU network. Inverse of ``compile_relu``.
    """
    if not circuit.layered:
        raise ValueError("read_network needs a layered circuit (VCVS isolating the layers).")
    c = circuit
    src, amp, d, res = c.voltage_sources, c.vcvs, c.diodes, c.resistors
    g = np.asarray(res.conductance, float)
    gains = np.asarray(amp.gain, float)
    # every known node voltage as an affine map of the current signals: coef @ [1, signals]
    affine = {GROUND: np.zeros(1 + c.n_inputs)}
    for k in range(src.plus.size):
        if src.minus[k] != GROUND:
            raise ValueError(f"read_network needs sources to ground; V{k} is not.")
        row = np.zeros(1 + c.n_inputs)
        row[0] = float(src.offset[k])
        if src.input[k] >= 0:
            row[1 + src.input[k]] += float(src.gain[k])
        affine[int(src.plus[k])] = row
    layers, width = [], c.n_inputs
    controlled = {}
    for k in range(amp.plus.size):
        if amp.minus[k] != GROUND or amp.control_minus[k] != GROUND:
            raise ValueError(f"read_network needs amplifiers referenced to ground; E{k} is not.")
        s = int(amp.control_plus[k])
        if s in controlled:
            raise ValueError(f"summing node {s} drives two amplifiers (E{controlled[s]}, E{k}).")
        controlled[s] = k
    for level in c.levels:
        free = np.asarray(level.free)
        if free.size == 0:
            continue
        # pre-activations z of this level's summing nodes, affine in [1, previous signals]
        G = np.zeros((free.size, np.asarray(level.boundary).size))
        np.add.at(G, (np.asarray(level.row), np.asarray(level.col)), g[np.asarray(level.resistor)])
        try:
            U = np.stack([affine[int(n)] for n in np.asarray(level.boundary)])
        except KeyError as missing:
            raise ValueError(f"node {missing} is not a source or amplifier output.") from None
        scale = np.array([gains[controlled[int(s)]] if int(s) in controlled else 1.0 for s in free])
        Z = scale[:, None] * (G @ U) / G.sum(axis=1, keepdims=True)
        sign = np.zeros(free.size)
        for node, value, other in ((d.cathode, 1.0, d.anode), (d.anode, -1.0, d.cathode)):
            here = np.isin(node, free) & (other == GROUND)
            sign[np.searchsorted(free, node[here])] = value
        if np.all(sign == 0):  # the linear output layer
            layers.append((Z[:, 1:], Z[:, 0]))
            break
        if np.any(sign == 0):
            raise ValueError("a hidden level mixes diode-clamped and linear summing nodes.")
        unique, index = _merge(sign[:, None] * Z, atol)  # units relu(sign z)
        layers.append((unique[:, 1:], unique[:, 0]))
        width = unique.shape[0]
        affine = {GROUND: np.zeros(1 + width)}
        for s, u, sg in zip(free, index, sign, strict=True):
            if int(s) not in controlled:
                raise ValueError(f"summing node {int(s)} drives no amplifier.")
            row = np.zeros(1 + width)
            row[1 + u] = sg
            affine[int(amp.plus[controlled[int(s)]])] = row
        # constant sources stay available to later layers
        for k in range(src.plus.size):
            if src.input[k] < 0:
                row = np.zeros(1 + width)
                row[0] = float(src.offset[k])
                affine[int(src.plus[k])] = row
    return layers


def _merge(rows: np.ndarray, atol: float) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows in order of first appearance, index of each row's distinct row): rows
    equal within ``atol`` are one; candidates found by sorting a random projection."""
    projection = rows @ np.random.default_rng(0).uniform(1.0, 2.0, rows.shape[1])
    order = np.argsort(projection, kind="stable")
    gaps = np.diff(projection[order]) > 2.0 * atol * rows.shape[1]
    clusters = np.split(order, np.flatnonzero(gaps) + 1)
    representative = np.arange(len(rows))
    for cluster in clusters:
        cluster = np.sort(cluster)
        for k, i in enumerate(cluster):
            for j in cluster[:k]:
                if representative[j] == j and np.allclose(rows[i], rows[j], rtol=0, atol=atol):
                    representative[i] = min(representative[i], j)
                    break
    first = np.flatnonzero(representative == np.arange(len(rows)))
    index = np.searchsorted(first, representative)
    return rows[first], index


def drn_circuit(network, w, amplifiers: bool = False) -> Circuit:
    """The circuit of a deep resistive network (``DiodeNetwork``) at parameters ``w``: input
    sources at gain * [x, -x], crossbar resistors, bias current sources from ground, a diode
    to ground per hidden node (excitatory half v >= 0, inhibitory half v <= 0); outputs at the
    last layer. With ``amplifiers``, every free node drives a VCVS of gain equal to its
    conductance to the layer below (the theorem's normalising gain), whose output feeds the
    next layer instead of the node itself and is the read-out for the last layer: the layers
    then compute u_k = clip(G_k u_{k-1} + b_k) feed-forward."""
    sizes = network.layer_sizes
    offsets = np.concatenate([[1], 1 + np.cumsum(sizes)])
    node = [offsets[k] + np.arange(n) for k, n in enumerate(sizes)]
    n_nodes = int(offsets[-1])
    drive = node[0]
    res_a, res_b, res_g, amp_out, amp_in, amp_gain = [], [], [], [], [], []
    for k, G in enumerate(w["weights"]):
        rows, cols = np.meshgrid(np.arange(G.shape[0]), np.arange(G.shape[1]), indexing="ij")
        res_a.append(node[k + 1][rows.ravel()])
        res_b.append(drive[cols.ravel()])
        res_g.append(jnp.ravel(G))
        drive = node[k + 1]
        if amplifiers:
            drive = n_nodes + np.arange(G.shape[0])
            n_nodes += G.shape[0]
            amp_out.append(drive)
            amp_in.append(node[k + 1])
            amp_gain.append(jnp.sum(G, axis=1))
    n_in = network.n_inputs
    hidden = [(node[k + 1], n) for k, n in enumerate(network.sizes[1:-1])]
    excitatory = np.concatenate([v[: n // 2] for v, n in hidden] or [np.zeros(0, np.int64)])
    inhibitory = np.concatenate([v[n // 2 :] for v, n in hidden] or [np.zeros(0, np.int64)])
    free = np.concatenate(node[1:])
    gain = jnp.asarray(network.input_gain, float)
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return Circuit(
        n_nodes,
        n_in,
        drive,
        Resistors(cat(res_a), cat(res_b), jnp.concatenate(res_g)),
        VoltageSources(
            node[0],
            np.zeros(2 * n_in, np.int64),
            0.0,
            jnp.concatenate([jnp.full(n_in, gain), jnp.full(n_in, -gain)]),
            np.tile(np.arange(n_in), 2),
        ),
        CurrentSources(np.zeros_like(free), free, jnp.concatenate(w["biases"])),
        VCVS(
            cat(amp_out),
            np.zeros_like(cat(amp_out)),
            cat(amp_in),
            np.zeros_like(cat(amp_in)),
            jnp.concatenate(amp_gain) if amp_gain else jnp.zeros(0),
        ),
        Diodes(
            np.concatenate([np.zeros_like(excitatory), inhibitory]),
            np.concatenate([excitatory, np.zeros_like(inhibitory)]),
        ),
    )
