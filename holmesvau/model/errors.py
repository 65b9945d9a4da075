"""Errors of model conversion and loading."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted or loaded; the message names the file and what is wrong."""
