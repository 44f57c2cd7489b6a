"""The two kinds of failure a user sees, so the command line can map them to exit codes."""


class InputError(Exception):
    """Bad input (case file, argument, snapshot file): one line, exit status 2.

    The message already names the file and the key; it is printed as it is.
    """


class RunError(Exception):
    """A run that had to stop (blow-up, broken invariant): one line, exit status 1."""


def reason(exc: BaseException) -> str:
    """An exception's text on one line, to follow a file name (KeyError quotes its text: unquoted)."""
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return " ".join(str(text).split())
