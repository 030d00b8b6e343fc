"""``python -m webbflow`` runs the command line."""

import sys

from webbflow.cli.main import main

sys.exit(main())
