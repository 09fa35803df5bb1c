"""``python -m sim`` runs the ``tokensim`` command."""

import sys

from sim.cli import main

sys.exit(main())
