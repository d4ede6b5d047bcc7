"""The one base of every user-facing error: bad input, bad config, an impossible request.

The CLI prints a `SolargenError` in one line and lets every other exception (a programming error)
show its traceback.
"""
from __future__ import annotations


class SolargenError(ValueError):
    """An input, config or request the user can fix; the message names the file or key."""
