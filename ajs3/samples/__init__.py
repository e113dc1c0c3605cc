"""The sample definitions that `ajs3 demo` runs (data only)."""
