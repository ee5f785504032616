"""pysnow, imported for this package without its warning about a missing system libmagic.

pysnow imports python-magic (a ctypes binding of the system's libmagic) only to guess the content
type of attachment uploads, which the connector never makes. Without libmagic, python-magic's
import fails, pysnow catches that and warns on every start; with warnings as errors (``-W error``,
the test suite's setting) that warning fails the import itself. It is silenced here, for that
import only. Every module of this package takes pysnow from here, never imports it directly.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Missing the python-magic library", category=UserWarning)
    import pysnow
    from pysnow.exceptions import InvalidUsage, MissingResult, ResponseError

__all__ = ["InvalidUsage", "MissingResult", "ResponseError", "pysnow"]
