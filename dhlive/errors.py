"""The one exception type a user sees: the CLI prints its message on one line and exits non-zero."""


class DhliveError(Exception):
    """An input or environment problem the user can act on (bad file, missing model, ...)."""
