"""Errors a user can cause, with messages that say what is wrong and how to fix it."""


class InputError(ValueError):
    """Invalid user input: bad values, shapes, files or configuration.

    The CLI prints these without a traceback and exits non-zero. The message names the argument,
    file, line or field at fault and, where there is one, the fix.
    """
