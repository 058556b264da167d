"""The site side: what runs in stackgen's venv on the build host, from
stack.yaml to the modules (spec, base, lock, check, fetch, render, build,
the easyblock). Never copied into an install."""
