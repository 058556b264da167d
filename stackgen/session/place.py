"""Where a session keeps its contexts: one folder per job (never a fixed
shared path), and the environment that points clients without arguments at
it.

How `ipyparallel.Client()` and `dask.distributed.Client()` find this job's
contexts with no arguments:

- ipyparallel's Client reads `<IPYTHONDIR>/profile_default/security/
  ipcontroller-client.json` (profile "default", no cluster id). Its only
  input besides arguments is IPYTHONDIR, so a session has an IPython dir of
  its own inside the job's folder, and the controller writes its files there.
  That dir's `profile_default` loads the user's own `ipython_config.py` and
  `ipython_kernel_config.py`, runs the user's startup files and keeps the
  user's history (templates/session_ipython_config.py.j2), so a kernel still
  behaves as the user set it up.
- distributed's Client reads the dask config key `scheduler-address` (and
  nothing like a scheduler file). DASK_CONFIG
  names a config folder read after ~/.config/dask and the site's, so the
  session's folder holds one file with the address while a scheduler is (or
  is about to be) up, and nothing otherwise: Client() without a session
  cluster still starts a LocalCluster as usual.

Two jobs have two folders, so two sessions of one user never see each
other's contexts. The folder sits under the user's state home, which the
nodes of a cluster share with the first node (workers read the scheduler
file there).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from stackgen.common.templating import environment

# What the environment of a session holds, read by every context command.
SESSION_DIR = "STACKGEN_SESSION_DIR"
USER_IPYTHONDIR = "STACKGEN_USER_IPYTHONDIR"
STATE_PARTS = ("stackgen", "sessions")
DASK_ADDRESS_FILE = "stackgen-session.yaml"
DASHBOARD_LINK_FILE = "stackgen-dashboard.yaml"


def state_home(env: dict[str, str]) -> Path:
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    return Path(env.get("XDG_STATE_HOME") or home / ".local" / "state")


def session_key(env: dict[str, str], pid: int | None = None) -> str:
    """slurm-CLUSTER-JOBID inside a job (job ids are unique per cluster only);
    local-HOST outside one (local-HOST-PID for a single-user server's own session)."""
    job = env.get("SLURM_JOB_ID")
    if job:
        cluster = env.get("SLURM_CLUSTER_NAME")
        return f"slurm-{cluster}-{job}" if cluster else f"slurm-{job}"
    host = socket.gethostname().split(".")[0]
    return f"local-{host}" + (f"-{pid}" if pid else "")


@dataclass(frozen=True)
class Session:
    root: Path

    @classmethod
    def of(cls, env: dict[str, str] | None = None) -> Session:
        """The session of this environment: STACKGEN_SESSION_DIR, else the job's."""
        env = dict(os.environ if env is None else env)
        if env.get(SESSION_DIR):
            return cls(Path(env[SESSION_DIR]))
        return cls(state_home(env).joinpath(*STATE_PARTS, session_key(env)))

    @property
    def ipython_dir(self) -> Path:
        return self.root / "ipython"

    @property
    def profile_dir(self) -> Path:
        return self.ipython_dir / "profile_default"

    @property
    def dask_config_dir(self) -> Path:
        return self.root / "dask-config"

    @property
    def dask_address_file(self) -> Path:
        return self.dask_config_dir / DASK_ADDRESS_FILE

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def dashboard_port_file(self) -> Path:
        """The dask dashboard's port, chosen once per session: the server's
        proxy entry (stackgen-dask/) points there before any scheduler runs."""
        return self.root / "dask-dashboard-port"

    @property
    def jupyter_config_dir(self) -> Path:
        return self.root / "jupyter-config"

    def state_file(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def client_env(self) -> dict[str, str]:
        """What kernels and commands of this session need to find its contexts."""
        return {SESSION_DIR: str(self.root), "IPYTHONDIR": str(self.ipython_dir),
                "DASK_CONFIG": str(self.dask_config_dir)}

    def prepare(self, env: dict[str, str] | None = None) -> None:
        """Make the folder, private to the user, and its IPython profile."""
        env = dict(os.environ if env is None else env)
        for folder in (self.root, self.logs, self.dask_config_dir,
                       self.profile_dir / "security", self.profile_dir / "log",
                       self.profile_dir / "pid"):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root.chmod(0o700)
        user = user_profile(env, self)
        for name in ("ipython_config.py", "ipython_kernel_config.py"):
            text = environment().get_template("session_ipython_config.py.j2").render(
                user_profile=str(user), config_file=name, history=user.is_dir())
            path = self.profile_dir / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
        # the dashboard as users reach it: through jupyter-server-proxy of this
        # session's server (under JupyterHub its prefix; a plain lab serves at /)
        prefix = env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        link = self.dask_config_dir / DASHBOARD_LINK_FILE
        text = "# written by stackgen for this session\n" + json.dumps(
            {"distributed": {"dashboard": {"link": prefix.rstrip("/") + "/proxy/{port}/status"}}}) + "\n"
        if not link.exists() or link.read_text() != text:
            link.write_text(text)
        startup = self.profile_dir / "startup"
        if not startup.exists() and not startup.is_symlink() and (user / "startup").is_dir():
            startup.symlink_to(user / "startup")


def user_profile(env: dict[str, str], session: Session) -> Path:
    """The user's own default IPython profile (their IPYTHONDIR before the session's)."""
    own = env.get(USER_IPYTHONDIR) or env.get("IPYTHONDIR")
    if not own or Path(own) == session.ipython_dir:
        own = str(Path(env.get("HOME") or os.path.expanduser("~")) / ".ipython")
    return Path(own) / "profile_default"
