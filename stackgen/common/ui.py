"""What the user sees besides errors: progress lines and JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def emit_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "stackgen"
