"""The per-logical-host daemon: lock, control socket, signals, lifecycle."""
