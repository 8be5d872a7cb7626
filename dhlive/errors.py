"""The exceptions a user sees: the CLI prints their message on one line and exits non-zero."""


class DhliveError(Exception):
    """An input or environment problem the user can act on (bad file, missing model, ...)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: work stops and nothing half-written is left behind."""
