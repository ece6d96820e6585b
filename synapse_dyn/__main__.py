"""``python -m synapse_dyn``: the ``synapse-dyn`` command."""

import sys

from synapse_dyn.cli import main

if __name__ == "__main__":
    sys.exit(main())
