"""Leaderboards built from run directories; reads files, never imports TensorFlow."""


class ReportError(ValueError):
    """The results cannot be reported as asked (here, so that the command line can catch it
    without loading pandas)."""
