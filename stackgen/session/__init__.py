"""What runs inside a user's job, from the jupyterlab module: the parallel
contexts (ipyparallel, dask.distributed) on the job's allocation, and the
session that starts them for the single-user server and stops them after it.
Imports only stackgen.common (pyproject: import-linter layers)."""
