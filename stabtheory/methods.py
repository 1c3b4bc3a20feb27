"""Temporary shim (phase 1): the stabilizers moved to :mod:`stabtheory.stabilizers`."""

from stabtheory.stabilizers import *  # noqa: F403
from stabtheory.stabilizers import __all__  # noqa: F401
