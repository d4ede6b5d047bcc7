"""`python -m application ...` is the `solargen` command (the application layer owns the entry point)."""
import sys

from application.cli import main

sys.exit(main())
