"""Exceptions a user can act on; the CLI prints their message as one sentence and exits."""


class GanvasError(Exception):
    """An error caused by input the user can fix; the message names the file, the value and the fix."""


class DataError(GanvasError):
    """A data set or image file that cannot be used as it is."""


class OptionsError(GanvasError):
    """A command-line flag or option value that is unknown or inconsistent."""


class CheckpointError(GanvasError):
    """A checkpoint that is missing, unreadable or does not fit the network."""


class ExportError(GanvasError):
    """A network that could not be exported, or whose exported file does not reproduce it."""


class DivergedError(GanvasError):
    """Training produced NaN or infinite weights; the last checkpoint before it is kept as it was."""


class WriteError(GanvasError):
    """A file that could not be written (full disk, no permission); the previous file there is intact."""
