"""ajs3: a job scheduler for highly available logical hosts."""

__version__ = "0.1.0"
