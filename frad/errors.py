"""One exception type for every failure a user can fix (bad file, bad param, missing weights).

The message is always one line: what is wrong, which file or key, what to do.
Entry points (``pipeline/*``, ``python -m frad.*``) print it as ``error: <message>`` and exit non-zero.
"""

from __future__ import annotations


class FradError(Exception):
    """A user-fixable failure. ``str(err)`` is a single line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class DataError(FradError):
    """Bad dataset layout or unreadable/inconsistent file."""


class ConfigError(FradError):
    """Bad parameter (unknown key, wrong type, out of range)."""


class WeightsError(FradError):
    """Backbone weights missing, unreachable or of the wrong architecture."""


class DownloadError(FradError):
    """Download, checksum or archive extraction failure."""


class TrainingError(FradError):
    """Training diverged (NaN/inf loss) or the requested device is unavailable."""
