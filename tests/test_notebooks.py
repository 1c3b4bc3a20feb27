"""The teaching notebooks run (they are jupytext scripts with a main())."""

import importlib.util
from pathlib import Path

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def test_head_tuning_notebook_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("nb01", NOTEBOOKS / "01_head_tuning_stability.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(str(tmp_path / "fig.png"))
    assert (tmp_path / "fig.png").exists()
    assert results["head.H1"].holds
    assert results["head.H2"].applicable and results["head.H2"].holds
