"""Thermodynamics of learning, by subject:

- ``dissipation``: entropy production of Markov jump processes and Markov synapses
  (Schnakenberg), at rest and along a protocol;
- ``heat``: Joule heat of resistor networks, Sekimoto heat of Langevin trajectories, learning
  against temperature;
- ``information``: the information-thermodynamic bounds of a sensing memory (Sartori, Granger,
  Lee, Horowitz 2014);
- ``uncertainty``: full counting statistics of currents and the thermodynamic uncertainty
  relations (steady state and periodic driving);
- ``esa``: energy-speed-accuracy of the ESA ladder (Lan et al. 2012) and its birth-death
  closed form (Wang, Lan, Tang 2015);
- ``energy_accuracy``: the energy TCL, explicit EP and coupled learning spend to reach a test
  loss (Joule heat of the network, housekeeping heat of the memories).

Units: energies in kT, entropies in k_B (docs/thermodynamics.md). Every public name is also
importable from ``synapse_dyn.analysis.thermodynamics`` directly.
"""

from .dissipation import (
    entropy_production_rate,
    medium_entropy_rate,
    protocol_dissipation,
    shannon_entropy,
    steady_dissipation,
)
from .energy_accuracy import energy_to_accuracy, energy_to_loss, learning_energy
from .esa import adaptation_tradeoff, birth_death_ladder
from .heat import (
    heat_statistics,
    incidence_matrix,
    joule_heat,
    joule_power,
    learning_vs_temperature,
    mean_with_error,
    sekimoto_heat,
    source_power,
    total_entropy_production,
)
from .information import memory_sensing_bounds, sensing_bounds
from .uncertainty import (
    current_statistics,
    gillespie_current,
    periodic_state,
    piecewise_drive,
    synapse_current_statistics,
    weight_channels,
)

__all__ = [
    "adaptation_tradeoff",
    "birth_death_ladder",
    "current_statistics",
    "energy_to_accuracy",
    "energy_to_loss",
    "learning_energy",
    "gillespie_current",
    "memory_sensing_bounds",
    "periodic_state",
    "piecewise_drive",
    "sensing_bounds",
    "synapse_current_statistics",
    "weight_channels",
    "entropy_production_rate",
    "heat_statistics",
    "incidence_matrix",
    "joule_heat",
    "joule_power",
    "learning_vs_temperature",
    "mean_with_error",
    "medium_entropy_rate",
    "protocol_dissipation",
    "sekimoto_heat",
    "shannon_entropy",
    "source_power",
    "steady_dissipation",
    "total_entropy_production",
]
