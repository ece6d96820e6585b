"""``python -m synapse_dyn``: the ``synapse-dyn`` command."""

import sys

from synapse_dyn.cli import main

sys.exit(main())
