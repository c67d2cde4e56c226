"""Typed errors. Each one carries a single line for the user: what was expected,
what was got, and what to do next. The CLI prints it and exits non-zero."""


class CompressError(Exception):
    """Base class for every error the CLI reports as one line."""

    exit_code = 1


class UserInputError(CompressError):
    """Bad input from the user: an unknown name, an impossible option, a missing file."""

    exit_code = 2


class UnsupportedError(UserInputError):
    """A valid request the chosen method, architecture or device cannot serve."""


class RuntimeFailure(CompressError):
    """A library or runtime failed while doing work the input asked for."""

    exit_code = 1
