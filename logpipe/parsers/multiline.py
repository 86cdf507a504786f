"""Joining the lines of one multi-line event: stack traces, tracebacks, indented output.

A container writes a Java stack trace or a Python traceback as many lines; each is a
log line of its own by the time it reaches logpipe (after :mod:`logpipe.parsers.partial`
has joined Docker's 16 KiB pieces). :class:`MultilineJoiner` groups them back into one
event per key (a container and stream), so the trace is searchable as one message.

Whether a line continues the pending event or starts a new one is decided by a mode
(``java``, ``python``, ``indented``) or by a user's ``start_pattern``. Most events can
only be known complete when the next one starts, so the last event of a burst waits
for :meth:`MultilineJoiner.expired` (``timeout_ns`` after its last line) or
:meth:`MultilineJoiner.flush` (end of stream).

Pure: no clock. The caller passes the current time to ``feed`` and ``expired``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable

__all__ = ["MODES", "MultilineJoiner"]

MODES = ("java", "python", "indented")

# java: indented frames ("\tat ...", "\t... 12 more", "    ... 5 common frames omitted"),
# the chain headers, which Throwable.printStackTrace writes unindented at the top level,
# and the exception's own header ("java.lang.IllegalStateException: msg"), which logback
# and log4j write on the line after the message that logged it. The header must be a
# package-qualified class name, so "Exception in thread ..." still starts an event.
_JAVA_CONTINUATION = re.compile(
    r"\s|Caused by:|Suppressed:|\.\.\. \d+ more"
    r"|(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable)(?::|$)"
)
# python: the line that opens a traceback; 3.11 exception groups open with "  + Exception
# Group Traceback" (indented, so it also continues a chained traceback).
_PY_HEADER = re.compile(
    r"Traceback \(most recent call last\):|\s*\+ Exception Group Traceback \(most recent call"
)
# python: the lines between the tracebacks of a chained exception (raise ... from, or an
# exception raised while handling another).
_PY_CHAIN = re.compile(
    r"During handling of the above exception|The above exception was the direct cause"
)
_INDENT = (" ", "\t")
_INDENTED = re.compile(r"[ \t]")

# Where a python-mode event stands; a line's meaning depends on what came before it.
_BODY = 0  # inside a traceback: indented lines continue, the next unindented one ends it
_ENDED = 1  # the exception line ("ValueError: boom") arrived: only a chain can follow
_GAP = 2  # a blank line after the exception line: a chain marker may still follow
_CHAIN = 3  # after "During handling ...": blank lines, then the next traceback

_Completed = tuple[str, int, bool]


def _utf8_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8, without encoding it in the common (ASCII) case."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class _Pending:
    """The lines of one unfinished event.

    One instance serves a key for as long as it has events: the next event reuses it
    and its list (``restart``), so a stream of one-line events allocates nothing here.
    """

    __slots__ = ("last_ns", "lines", "size", "split", "state", "time_ns")

    def __init__(self, text: str, time_ns: int, now_ns: int, state: int = _BODY) -> None:
        self.lines = [text]
        # UTF-8 bytes of the joined text, newlines included, for the max_bytes cap.
        self.size = _utf8_len(text)
        self.time_ns = time_ns
        self.last_ns = now_ns
        self.split = False
        self.state = state

    def restart(self, text: str, time_ns: int, now_ns: int, split: bool, state: int) -> None:
        """Make this the event that ``text`` starts."""
        self.lines.clear()
        self.lines.append(text)
        self.size = _utf8_len(text)
        self.time_ns = time_ns
        self.last_ns = now_ns
        self.split = split
        self.state = state

    def completed(self) -> _Completed:
        """The joined event; a one-line event is its line, not a copy."""
        lines = self.lines
        text = lines[0] if len(lines) == 1 else "\n".join(lines)
        return text, self.time_ns, self.split


class MultilineJoiner:
    """Joins continuation lines into one event, per key (a container + stream).

    Modes:

    ``java``
        A continuation is a line starting with whitespace (``"\\tat com.x.Y(Y.java:1)"``,
        ``"    ... 5 more"``), a line starting with ``Caused by:`` / ``Suppressed:``
        (optionally after whitespace), or ``... N more``. Any other line starts an event.
    ``python``
        ``Traceback (most recent call last):`` starts an event; indented lines continue
        it; the first unindented line after them (``ValueError: boom``) ends it and
        belongs to it. ``During handling of the above exception ...`` / ``The above
        exception was the direct cause ...`` and the blank lines around them continue it
        (a chained exception is one event). A blank line right after the exception line
        stays with the traceback (the event then ends in ``"\\n"``) so that a chain marker
        after it can still join. Lines outside a traceback are one-line events, returned
        at once. Not joined: an exception message that spans several unindented lines
        (its second line becomes an event of its own).
    ``indented``
        A line starting with a space or tab continues the previous line.

    ``start_pattern`` (a regex, instead of a mode)
        A line in which the pattern is found (``re.search``; anchor it with ``^``) starts
        an event; any other line continues the pending one.

    In every mode, a line that continues nothing (the first of a key) starts an event.

    Caps: an event holds at most ``max_lines`` lines and ``max_bytes`` UTF-8 bytes
    (newlines counted; one line longer than the cap is kept whole). A continuation that
    does not fit completes the event as it is, and starts the next one; both pieces, and
    any further ones, are reported with ``split=True`` (the caller tags and counts).

    ``feed`` returns the events that the line completed, as ``(text, time_ns, split)``:
    the lines joined with ``"\\n"``, the ``time_ns`` of the first line. ``expired(now_ns)``
    returns and forgets ``(key, text, time_ns, split)`` for the events whose last line
    arrived more than ``timeout_ns`` before (measured on the ``now_ns`` given to
    ``feed``), so the last event of a burst is not held. ``flush(key)`` ends a stream.
    """

    __slots__ = (
        "_match",
        "_match_starts",
        "_max_bytes",
        "_max_lines",
        "_pending",
        "_python",
        "_timeout_ns",
    )

    def __init__(
        self,
        mode: str = "",
        start_pattern: str = "",
        max_lines: int = 500,
        max_bytes: int = 1 << 20,
        timeout_ns: int = 2 * 10**9,
    ) -> None:
        # The messages name the options: the config loader shows them as they are.
        if bool(mode) == bool(start_pattern):
            raise ValueError("multiline: set exactly one of mode or start_pattern")
        if mode and mode not in MODES:
            raise ValueError(f"multiline: mode must be one of {', '.join(MODES)}, not {mode!r}")
        if max_lines < 1:
            raise ValueError(f"multiline: max_lines must be at least 1, not {max_lines}")
        if max_bytes < 1:
            raise ValueError(f"multiline: max_bytes must be at least 1, not {max_bytes}")
        if timeout_ns < 0:
            raise ValueError(f"multiline: timeout must not be negative, not {timeout_ns}")
        # The bound method of a compiled pattern, looked up once rather than per line;
        # a match means "starts an event" for start_pattern, "continues" for the modes.
        self._match: Callable[[str], object]
        self._match_starts = bool(start_pattern)
        if start_pattern:
            try:
                self._match = re.compile(start_pattern).search
            except re.error as exc:
                raise ValueError(
                    f"multiline: start_pattern {start_pattern!r} is not a valid regex: {exc}"
                ) from None
        elif mode == "java":
            self._match = _JAVA_CONTINUATION.match
        elif mode == "indented":
            self._match = _INDENTED.match
        else:
            self._match = _PY_HEADER.match  # unused: python has its own feed
        self._python = mode == "python"
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._timeout_ns = timeout_ns
        self._pending: dict[Hashable, _Pending] = {}

    def __len__(self) -> int:
        """Number of keys with a pending event."""
        return len(self._pending)

    def feed(self, key: Hashable, text: str, time_ns: int, now_ns: int) -> list[_Completed]:
        """Add one line of ``key``; return the events it completed (usually none or one)."""
        if self._python:
            return self._feed_python(key, text, time_ns, now_ns)
        entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = _Pending(text, time_ns, now_ns)
            return []
        if (self._match(text) is not None) is not self._match_starts:
            return self._append(entry, text, time_ns, now_ns, _BODY)
        done = [entry.completed()]
        entry.restart(text, time_ns, now_ns, False, _BODY)
        return done

    def pending_since(self, key: Hashable) -> int | None:
        """The ``time_ns`` given with the first line of ``key``'s pending event, if any."""
        entry = self._pending.get(key)
        return None if entry is None else entry.time_ns

    def expired(self, now_ns: int) -> list[tuple[Hashable, str, int, bool]]:
        """Return and forget the events whose last line came more than ``timeout_ns`` ago."""
        cutoff = now_ns - self._timeout_ns
        done = [
            (key, *entry.completed())
            for key, entry in self._pending.items()
            if entry.last_ns < cutoff
        ]
        for item in done:
            del self._pending[item[0]]
        return done

    def flush(self, key: Hashable) -> _Completed | None:
        """Return and forget ``key``'s pending event (its stream ended), or None."""
        entry = self._pending.pop(key, None)
        return None if entry is None else entry.completed()

    def _append(
        self, entry: _Pending, text: str, time_ns: int, now_ns: int, state: int
    ) -> list[_Completed]:
        """Add a continuation line to ``entry``, or split the event if it does not fit."""
        size = _utf8_len(text)
        if len(entry.lines) < self._max_lines and entry.size + 1 + size <= self._max_bytes:
            entry.lines.append(text)
            entry.size += 1 + size
            entry.last_ns = now_ns
            entry.state = state
            return []
        entry.split = True
        done = [entry.completed()]
        entry.restart(text, time_ns, now_ns, True, state)
        return done

    def _feed_python(self, key: Hashable, text: str, time_ns: int, now_ns: int) -> list[_Completed]:
        """``feed`` for mode ``python``: a small state machine per key (see the states)."""
        entry = self._pending.get(key)
        if entry is None:
            if _PY_HEADER.match(text) is not None:
                self._pending[key] = _Pending(text, time_ns, now_ns, _BODY)
                return []
            # Not in a traceback: a one-line event, nothing to wait for.
            return [(text, time_ns, False)]
        state = entry.state
        blank = not text or text.isspace()
        if state == _BODY:
            if blank or text.startswith(_INDENT):
                return self._append(entry, text, time_ns, now_ns, _BODY)
            if _PY_HEADER.match(text) is None:
                # The exception line: it ends the traceback and belongs to it.
                return self._append(entry, text, time_ns, now_ns, _ENDED)
            # A new traceback before the exception line (the old one was cut short).
        elif state == _ENDED or state == _GAP:
            if blank and state == _ENDED:
                return self._append(entry, text, time_ns, now_ns, _GAP)
            if _PY_CHAIN.match(text) is not None:
                return self._append(entry, text, time_ns, now_ns, _CHAIN)
        else:  # _CHAIN: blank lines, then the next traceback (indented for a group)
            if blank:
                return self._append(entry, text, time_ns, now_ns, _CHAIN)
            if text.startswith(_INDENT) or _PY_HEADER.match(text) is not None:
                return self._append(entry, text, time_ns, now_ns, _BODY)
        # The line is not part of the pending traceback: that one is complete.
        done = [entry.completed()]
        if _PY_HEADER.match(text) is not None:
            entry.restart(text, time_ns, now_ns, False, _BODY)
        else:
            del self._pending[key]
            done.append((text, time_ns, False))
        return done
