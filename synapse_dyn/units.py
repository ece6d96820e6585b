"""The project's unit system, written once (docs/conventions.md, "Units").

The models are non-dimensional: every quantity is a number in one of a few reference units.

* ``time_unit``: the model time unit. The paper's E. coli kernel time is tau_K = 0.05 of it;
  protocols, kernels and relaxation times are all in it.
* ``current_unit``: the unit of the synaptic current s = dE/dw of the TCL synapse models.
* ``energy_unit`` and ``parameter_unit``: a substrate's energy E and learning parameters w in
  its own units (conductance, stiffness, coupling), so s = dE/dw is in energy/parameter units.
* ``markov_time_unit``: the time unit of the Markov (ESA ladder) synapse, before its kernel is
  rescaled onto ``time_unit``.
* ``kT``: the thermal energy; dissipation is in kT and kT per time unit.

A dataset variable in these units is a pure number, so its CF ``units`` attribute (a UDUNITS
string) is ``"1"``; its ``model_units`` attribute names the reference unit, as a product of the
names above with ``*``, ``/`` and ``**`` (``"current_unit * time_unit"``, ``"kT / time_unit"``).
Quantities with physical units keep their UDUNITS string (``"bit"``, ``"umol/L"``).
``cf_units`` turns the short spellings the code uses (``"time"``, ``"current x time"``,
``"kT / time"``) into that pair; ``DEFINITIONS`` declares the reference units to pint, for
tools that check dimensions.
"""

import re

SYMBOLS = {
    "time": "time_unit",
    "current": "current_unit",
    "energy": "energy_unit",
    "parameter": "parameter_unit",
    "kT": "kT",
}
"""The short names a quantity's units are written with in the code, and the reference unit each
one stands for."""

DEFINITIONS = (
    "time_unit = [model_time]",
    "current_unit = [model_current]",
    "energy_unit = [model_energy]",
    "parameter_unit = [model_parameter]",
    "markov_time_unit = [markov_time]",
    "kT = [thermal_energy]",
)
"""pint definitions of the reference units (``registry.define(line)`` for each)."""

_LONG = {
    "Markov time": "markov_time_unit",
    "energy units of the substrate": "energy_unit",
    "parameter units of the substrate": "parameter_unit",
}
_WORD = re.compile(r"[A-Za-z_]+")


def cf_units(units: str) -> dict[str, str]:
    """The CF attributes of a quantity whose units are written ``units``: ``{"units": units}``
    for a UDUNITS string, ``{"units": "1", "model_units": ...}`` for a quantity in the project's
    reference units (``"current x time"`` -> ``"current_unit * time_unit"``)."""
    text = units
    for long, name in _LONG.items():
        text = text.replace(long, name)
    words = set(_WORD.findall(text))
    if not words & {*SYMBOLS, *SYMBOLS.values(), *_LONG.values()}:
        return {"units": units}
    text = re.sub(r"\s+x\s+", " * ", text).replace("^", "**")
    text = _WORD.sub(lambda m: SYMBOLS.get(m.group(), m.group()), text)
    return {"units": "1", "model_units": text}
