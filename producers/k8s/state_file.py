"""Small JSON state files of the Kubernetes producers (what was published, where logs stand).

Written atomically (temporary file, then rename), so a crash leaves the previous state whole.
An unreadable or older-format file is ignored with a warning: the producer then starts afresh,
which costs duplicates, never losses.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("sentinel.state_file")


def load_state(path: Path | None, version: int) -> dict[str, Any] | None:
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or data.get("version") != version:
        log.warning("ignoring state file %s: not format version %d", path, version)
        return None
    return data


def save_state(path: Path, version: int, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({**data, "version": version}, separators=(",", ":")))
    os.replace(temporary, path)
