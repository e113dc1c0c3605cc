"""Execution hosts: jobs of a logical host run on other hosts over OpenSSH (docs/exechosts.md)."""
