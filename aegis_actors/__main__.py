"""`python -m aegis_actors` is the `aegis` command."""

import sys

from aegis_actors.cli import main

sys.exit(main())
