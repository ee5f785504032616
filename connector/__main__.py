"""``python -m connector`` runs the ``mim-connector`` command."""

import sys

from connector.commands.cli import main

sys.exit(main())
