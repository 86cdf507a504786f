"""Read positions on disk: a small JSON object per input, replaced atomically.

Inputs save them only when everything read before them has been delivered, and every
event id is derived from its source position, so a checkpoint that is lost, stale or
unreadable costs a re-read, never a duplicate or a gap.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def load(path: str) -> dict[str, int]:
    """The positions saved at ``path``; {} when there are none or they cannot be read."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return {str(k): int(v) for k, v in data.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning(
            "Ignoring unreadable checkpoints; reading from the start (ids prevent "
            "duplicates). path=%s error=%s",
            path,
            exc,
        )
        return {}


def write_json(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` all at once (temp file, fsync, rename); raises OSError.

    A crash leaves the old file or the new one, never half of either.
    """
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def save(path: str, positions: dict[str, int]) -> None:
    """Write ``positions`` to ``path`` atomically; a failure is logged."""
    try:
        write_json(path, positions)
    except OSError as exc:
        log.warning(
            "Failed to save checkpoints; a restart re-reads more (no duplicates). path=%s error=%s",
            path,
            exc,
        )
