"""Production jobs from a notebook: engines or workers in a separate batch
job, with the site's defaults. ipyparallel reads them from the session's
profile (ipcluster_config.py: its Slurm launchers); dask-jobqueue's
SLURMCluster from dask config (`jobqueue.slurm`: the site's part is in the
dask module's config, written by the build; the session adds where this
node's scheduler listens)."""

from __future__ import annotations

import json

from stackgen.common.fsutil import write_atomic
from stackgen.common.templating import environment
from stackgen.session.allocation import Allocation
from stackgen.session.place import Session, user_profile
from stackgen.session.plan import Options

JOBQUEUE_FILE = "stackgen-jobqueue.yaml"


def ipcluster_config(session: Session, alloc: Allocation, options: Options, env: dict[str, str]) -> str:
    return environment().get_template("session_ipcluster_config.py.j2").render(
        user_profile=str(user_profile(env, session)), address=alloc.address,
        batch_dir=str(session.root), partition=options.partition, account=options.account,
        time_limit=options.time_limit)


def jobqueue_config(alloc: Allocation) -> dict:
    return {"jobqueue": {"slurm": {"scheduler-options": {"host": alloc.address}}}}


def write(session: Session, alloc: Allocation, options: Options, env: dict[str, str]) -> None:
    write_atomic(session.profile_dir / "ipcluster_config.py",
                 ipcluster_config(session, alloc, options, env), mode=0o600)
    write_atomic(session.dask_config_dir / JOBQUEUE_FILE, "# written by stackgen for this session\n"
                 + json.dumps(jobqueue_config(alloc)) + "\n", mode=0o600)
