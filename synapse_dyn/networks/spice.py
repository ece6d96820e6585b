"""SPICE export and an ngspice operating-point runner, to check equilibria against a circuit
simulator. Node k of a network is SPICE node ``n{k}``; ground is node ``0``.

Ideal diodes are modelled by the SPICE diode with a tiny emission coefficient N: its forward
drop at current I is N V_T ln(1 + I / IS), which is what a comparison can be held to
(``diode_forward_drop``).
"""

import os
import shutil
import subprocess
import tempfile

import numpy as np

DIODE_EMISSION = 1e-3
DIODE_SATURATION = 1e-14
THERMAL_VOLTAGE = 0.025852  # k T / q at 27 C, ngspice's default temperature


def diode_forward_drop(current: float) -> float:
    """Forward voltage of the near-ideal diode model at ``current`` amperes."""
    return DIODE_EMISSION * THERMAL_VOLTAGE * np.log1p(abs(current) / DIODE_SATURATION)


def node(k: int, grounded=frozenset()) -> str:
    return "0" if k in grounded else f"n{k}"


def build_netlist(
    title: str,
    resistors,
    voltage_sources,
    current_sources=(),
    diodes=(),
) -> str:
    """A netlist with an operating-point control block.

    ``resistors``: (a, b, resistance); ``voltage_sources``: (plus, volts) to ground;
    ``current_sources``: (node, amperes) injected into the node from ground;
    ``diodes``: (anode, cathode). Node names are strings (``node()``).
    """
    lines = [f"* {title}"]
    lines += [f"R{i} {a} {b} {r:.17g}" for i, (a, b, r) in enumerate(resistors)]
    lines += [f"V{i} {a} 0 DC {v:.17g}" for i, (a, v) in enumerate(voltage_sources)]
    # SPICE current sources push current from their first to their second node
    lines += [f"I{i} 0 {a} DC {c:.17g}" for i, (a, c) in enumerate(current_sources)]
    lines += [f"D{i} {a} {c} DIDEAL" for i, (a, c) in enumerate(diodes)]
    if diodes:
        lines.append(f".model DIDEAL D(IS={DIODE_SATURATION:g} N={DIODE_EMISSION:g})")
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
