"""Studies: sweep specifications and their runners (one module per study)."""

from stabtheory.simulations.head import HeadStudy, HeadStudySpec, run_head_study

__all__ = ["HeadStudy", "HeadStudySpec", "run_head_study"]
