"""Resolve the reference stack with pip-tools and with uv, in one run.

Prints each resolver's wall time for a fresh resolution (no earlier lock to
keep pins from) and the ratio pip-tools / uv. Caches are warmed by one
untimed round first, so both are measured on equal terms; --rounds N takes
the best of N.

    .venv/bin/python bench/lock.py [--spec stack.yaml] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stackgen.common.ui import default_cache  # noqa: E402
from stackgen.site.base import load_base  # noqa: E402
from stackgen.site.resolvers import Request, resolve  # noqa: E402
from stackgen.site.spec import load_stack  # noqa: E402


def timed(resolver: str, request: Request, base, cache: Path) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{resolver}-") as tmp:
        start = time.perf_counter()
        pins = resolve(resolver, request, base, Path(tmp), cache)
        return time.perf_counter() - start, len(pins)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=Path(__file__).resolve().parent.parent / "stack.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stack = load_stack(args.spec)
    base = load_base(stack.base)
    provided = base.identity.provided()
    request = Request(requirements=tuple(sorted(p.text for p in stack.pins if p.name not in provided)),
                      constraints=tuple(base.identity.constraints()))
    cache = default_cache()
    results = {}
    for resolver in ("pip-tools", "uv"):
        timed(resolver, request, base, cache)           # warm-up, untimed
        best, count = min(timed(resolver, request, base, cache) for _ in range(args.rounds))
        results[resolver] = best
        print(f"{resolver:10s} {best:8.2f} s  ({count} pins, best of {args.rounds})")
    print(f"ratio pip-tools/uv: {results['pip-tools'] / results['uv']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
