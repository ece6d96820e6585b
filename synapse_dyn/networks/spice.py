"""SPICE export and an ngspice operating-point runner, to check equilibria against a circuit
simulator. Node k of a network is SPICE node ``n{k}``; ground is node ``0``.

Ideal diodes are modelled by the SPICE diode with a tiny emission coefficient N (1e-3 by
default, 1e-4 for ``Circuit.to_spice``): its forward drop at current I is
N V_T ln(1 + I / IS), which is what a comparison can be held to (``diode_forward_drop``).
VCVS are E elements; a diode in series with a source is a D element and a V element.
"""

import os
import shutil
import subprocess
import tempfile

import numpy as np

DIODE_EMISSION = 1e-3
DIODE_SATURATION = 1e-14
THERMAL_VOLTAGE = 0.025852  # k T / q at 27 C, ngspice's default temperature


def diode_forward_drop(current: float, emission: float = DIODE_EMISSION) -> float:
    """Forward voltage of the near-ideal diode model (emission coefficient ``emission``) at
    ``current`` amperes."""
    return emission * THERMAL_VOLTAGE * np.log1p(abs(current) / DIODE_SATURATION)


def node(k: int, grounded=frozenset()) -> str:
    return "0" if k in grounded else f"n{k}"


def build_netlist(
    title: str,
    resistors,
    voltage_sources,
    current_sources=(),
    diodes=(),
    vcvs=(),
    emission: float = DIODE_EMISSION,
) -> str:
    """A netlist with an operating-point control block.

    ``resistors``: (a, b, resistance); ``voltage_sources``: (plus, volts) to ground or
    (plus, minus, volts); ``current_sources``: (node, amperes) injected into the node from
    ground, or (a, b, amperes) flowing from a through the source into b; ``diodes``:
    (anode, cathode) or (anode, cathode, offset), the offset a series source (the branch
    conducts when v_anode - v_cathode reaches it; internal node ``d{k}``); ``vcvs``:
    (plus, minus, control_plus, control_minus, gain), SPICE E elements. Node names are
    strings (``node()``). Diodes are the SPICE diode with saturation current
    ``DIODE_SATURATION`` and emission coefficient ``emission``.
    """
    lines = [f"* {title}"]
    lines += [f"R{i} {a} {b} {r:.17g}" for i, (a, b, r) in enumerate(resistors)]
    for i, source in enumerate(voltage_sources):
        plus, minus, v = source if len(source) == 3 else (source[0], "0", source[1])
        lines.append(f"V{i} {plus} {minus} DC {v:.17g}")
    # SPICE current sources push current from their first to their second node
    for i, source in enumerate(current_sources):
        a, b, c = source if len(source) == 3 else ("0", *source)
        lines.append(f"I{i} {a} {b} DC {c:.17g}")
    for i, diode in enumerate(diodes):
        anode, cathode, offset = diode if len(diode) == 3 else (*diode, 0.0)
        if offset == 0:
            lines.append(f"D{i} {anode} {cathode} DIDEAL")
        else:
            lines += [f"D{i} {anode} d{i} DIDEAL", f"VD{i} d{i} {cathode} DC {offset:.17g}"]
    lines += [f"E{i} {p} {m} {cp} {cm} {k:.17g}" for i, (p, m, cp, cm, k) in enumerate(vcvs)]
    if diodes:
        lines.append(f".model DIDEAL D(IS={DIODE_SATURATION:g} N={emission:g})")
    lines += [".options reltol=1e-9 abstol=1e-15 vntol=1e-12", ".end"]
    return "\n".join(lines) + "\n"


def netlist(network, w: np.ndarray, inputs: np.ndarray) -> str:
    """The netlist of a ``ResistorNetwork`` at conductances ``w`` and source ``inputs``."""
    grounded = frozenset(int(k) for k in network.ground_nodes)
    senders, receivers = np.asarray(network.graph.senders), np.asarray(network.graph.receivers)
    resistors = [
        (node(int(a), grounded), node(int(b), grounded), 1.0 / g)
        for a, b, g in zip(senders, receivers, w, strict=True)
    ]
    sources = [(node(int(k)), v) for k, v in zip(network.input_nodes, inputs, strict=True)]
    return build_netlist("resistor network", resistors, sources)


def ngspice_available() -> bool:
    return shutil.which("ngspice") is not None


def run_ngspice(netlist_text: str, timeout: float = 600.0) -> dict[str, float]:
    """Run an operating-point analysis with ngspice in batch mode; return node voltages by
    SPICE node name (e.g. ``{"n3": 0.41, ...}``)."""
    if not ngspice_available():
        raise RuntimeError(
            "ngspice is not installed; install it (Debian: apt-get install ngspice)."
        )
    body = netlist_text.rstrip().removesuffix(".end")
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "op.raw")
        circuit = os.path.join(tmp, "circuit.cir")
        control = f".control\nset filetype=ascii\nop\nwrite {raw}\n.endc\n.end\n"
        with open(circuit, "w") as handle:
            handle.write(body + "\n" + control)
        result = subprocess.run(
            ["ngspice", "-b", circuit], capture_output=True, text=True, timeout=timeout
        )
        if not os.path.exists(raw):  # ngspice exits 1 when no .print line exists
            raise RuntimeError(f"ngspice failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return _parse_raw(open(raw).read())


def _parse_raw(text: str) -> dict[str, float]:
    names, values = [], []
    section = None
    for line in text.splitlines():
        if line.startswith("Variables:"):
            section = "variables"
            continue
        if line.startswith("Values:"):
            section = "values"
            continue
        fields = line.split()
        if section == "variables" and len(fields) >= 3:
            names.append(fields[1])
        elif section == "values" and fields:
            values.append(float(fields[-1]))
    voltages = {}
    for name, value in zip(names, values, strict=True):
        if name.startswith("v(") and name.endswith(")"):
            voltages[name[2:-1]] = value
    return voltages
