"""Temporary shim (phase 1 of the redesign): the study results moved to
:mod:`stabtheory.simulations.protocol`."""

from stabtheory.simulations.protocol import DrawResult, Study, draws_by_config

__all__ = ["DrawResult", "Study", "draws_by_config"]
