"""The benchmark suite (issue 7): `bench/run [--quick] [--json FILE]`."""
