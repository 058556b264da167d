"""The contexts of a session, by kind: read them, stop them (for `stop`
and for the end of the single-user server alike)."""

from __future__ import annotations

import os

from stackgen.session import daskctx, ipp, state
from stackgen.session.place import Session
from stackgen.session.plan import options_from

KINDS = {"ipyparallel": ipp, "dask": daskctx}


def contexts(session: Session) -> list[state.Context]:
    return [c for c in (state.read(session.state_file(n)) for n in KINDS) if c]


def stop_all(session: Session, names=None) -> list[state.Context]:
    """Stop every context of the session (or those named) that is not stopped yet."""
    options = options_from(dict(os.environ))
    stopped = []
    for context in contexts(session):
        if names and context.name not in names:
            continue
        if context.state in ("stopped", "failed") and not context.running():
            continue    # a failed start cleaned up after itself; its reason stays to be read
        done = KINDS[context.name].stop(session, context, options)
        state.write(session.state_file(context.name), done)
        stopped.append(done)
    return stopped
