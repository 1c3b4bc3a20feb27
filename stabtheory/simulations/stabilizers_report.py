"""Temporary shim (phase 1): the stabilizer study's report hooks, now in
:mod:`stabtheory.simulations.stabilizers`."""

from stabtheory.simulations.stabilizers import figures, markdown, section

__all__ = ["figures", "markdown", "section"]
