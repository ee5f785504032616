"""``python -m connector`` runs the ``mim-connector`` command."""

import sys

from connector.cli import main

sys.exit(main())
