"""Paper figures, one module per figure, each with the same two functions:

* ``compute(quick: bool = False, progress: bool = True) -> xarray.Dataset``: the figure's data,
  self-describing (units, long names, provenance); ``quick`` is a small version for tests
  and notebooks that keeps every qualitative feature;
* ``plot(ds) -> matplotlib.figure.Figure``: the figure, from that dataset alone.

``synapse-dyn figure NAME`` runs both and writes NAME.nc, NAME.png and NAME.pdf (and NAME.md
when the module also has ``markdown(ds) -> str``, a table).
"""

import importlib
import pkgutil


def names() -> list[str]:
    """The available figures."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str):
    """The figure module ``name`` (with its ``compute`` and ``plot``)."""
    if name not in names():
        raise ValueError(f"unknown figure {name!r}; choose one of: {', '.join(names())}.")
    return importlib.import_module(f"{__name__}.{name}")
