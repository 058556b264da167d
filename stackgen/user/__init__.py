"""The user side: what runs in the jupyterlab module's own Python after
`module load`, copied into every install (overlays, venvs, kernels)."""
