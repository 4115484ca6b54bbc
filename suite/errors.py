"""Errors the CLI turns into one clear line and a non-zero exit."""


class SuiteError(Exception):
    """A user-facing error: bad input, a missing dataset root, a mismatching checkpoint."""


class SpecError(SuiteError):
    """A malformed table spec or profile."""


class CellFailed(SuiteError):
    """A cell's training or evaluation failed; the reason is stored with the cell."""
