"""The error a user can fix: bad input, a missing file, a setting out of range.

The command line prints a ``UserError`` as one line; any other exception is a fault in
emorec or below it, which keeps its traceback (``emorec -v``). It is a ``ValueError``, so
that callers catching bad values keep working.
"""


class UserError(ValueError):
    """Bad input, named in a message that says how to fix it."""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the user named (or must provide) is not there."""


class ModelNotFound(UserError):
    """A model URI that names nothing; the message lists what does exist."""
