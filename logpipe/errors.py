"""The errors logpipe raises, and which of them a retry can cure.

::

    LogpipeError                      base; ``retriable`` says whether trying again may help
    ├── ConfigError                   a config file is missing, unreadable or invalid
    └── OutputError                   an output could not deliver a request
        ├── TransportError            refused, reset, timed out: retriable
        └── BulkRequestError          the whole _bulk request was answered with an error status;
                                      retriable for 429 and 5xx, not for other 4xx

Per-item outcomes of a bulk response are not exceptions: ``logpipe.outputs.bulk``
classifies them as data (delivered, retry, dead-letter), and only the shipper loop
owns the backoff.
"""

from __future__ import annotations


class LogpipeError(Exception):
    """Base class of every error logpipe raises on purpose."""

    retriable = False


class ConfigError(LogpipeError):
    """A config problem, rendered as one line: ``FILE: key.path: what is wrong``."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        line = f"{file}: {key}: {problem}" if key else f"{file}: {problem}"
        # One line, whatever the file holds: TOML allows a newline in a quoted key or
        # a value, and the message quotes both (found by the config property test).
        super().__init__(line.replace("\r", "\\r").replace("\n", "\\n"))


class OutputError(LogpipeError):
    """An output request failed as a whole."""


class TransportError(OutputError):
    """The request never got an HTTP answer (refused, reset, timeout)."""

    retriable = True


class BulkRequestError(OutputError):
    """The whole request was answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.retriable = status == 429 or status >= 500
        super().__init__(f"HTTP {status}: {body[:300]}")
