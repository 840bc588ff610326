"""Errors that the command line reports as one clear line instead of a traceback."""


class InputError(ValueError):
    """Bad user input: a file, a line, an atom or an option that cannot be used.

    The message must name the offending file (and line or atom where known), since
    the command line prints it as the whole diagnosis.
    """
