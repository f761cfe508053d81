"""Errors of the data engine."""


class DataError(ValueError):
    """A bad data source (image, label, depth, layout); the message names the file or folder."""
