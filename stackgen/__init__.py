"""stackgen: an HPC centre's Jupyter stack from one declarative file."""

__version__ = "0.1.0"
