"""The `ajs3` command: parses, calls the library, prints."""
