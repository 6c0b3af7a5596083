"""Reports: the store turned into `report.md` and a self-contained `report.html`.

`build_report(store_path, out_dir)` reads the store alone (cells, metrics, artifacts,
environments) and writes both files; plots are PNGs (matplotlib), embedded in the HTML.
"""

from convbench.report.build import build_report

__all__ = ["build_report"]
