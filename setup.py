"""Builds the package and, with it, the C job supervisor (ajs3/engine/supervise.c).

Everything else is in setup.cfg. The supervisor is a program, not an extension module,
so the wheel is marked as platform-specific by hand.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ajs3.engine import native  # standard library only


class BuildPyWithSupervisor(build_py):
    def run(self) -> None:
        super().run()
        native.build(Path(self.build_lib) / "ajs3" / "engine" / native.BINARY)


class BinaryDistribution(Distribution):
    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildPyWithSupervisor}, distclass=BinaryDistribution)
