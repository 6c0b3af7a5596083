"""Studies: a YAML spec expanded into cells, each run and stored.

spec (YAML) -> `plan()` -> cells -> `run_cell()` -> CellResult -> Store.
"""

from convbench.study.spec import SpecError, StudySpec, load_spec, parse_spec
from convbench.study.plan import plan
from convbench.study.cell import Cell, MeasureOptions, compare, run_cell
from convbench.study.executor import run_study

__all__ = ["SpecError", "StudySpec", "load_spec", "parse_spec", "plan", "Cell",
           "MeasureOptions", "compare", "run_cell", "run_study"]
