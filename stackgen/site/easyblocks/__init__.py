"""stackgen's easyblock (stackgenbundle.py, the one file handed to EasyBuild
with --include-easyblocks) and what it runs on: the contract with `stackgen
build` (contract.py) and its pure parts, testable without EasyBuild."""
