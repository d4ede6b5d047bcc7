"""`python -m solargen ...` is the `solargen` command."""
import sys

from solargen.application.cli import main

sys.exit(main())
