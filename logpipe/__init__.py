"""logpipe: the log pipeline for container hosts."""

__version__ = "0.1.0"
