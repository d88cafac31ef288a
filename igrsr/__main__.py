"""``python -m igrsr``: the command line (what ``torchrun -m igrsr`` runs on every rank)."""

import sys

from .cli import main

sys.exit(main())
