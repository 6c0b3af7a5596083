"""Expand a study spec into its cells: framework x model/dataset x format x run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from convbench.convert import resolve_target
from convbench.models import ZOO
from convbench.records import CellKey
from convbench.runtimes import default_runtime
from convbench.study.cell import Cell, MeasureOptions
from convbench.study.spec import StudySpec, UserModelEntry
from convbench.training import PRESETS, preset_config


def plan(spec: StudySpec, data_dir: str | None = None, memory: int | None = None) -> list[Cell]:
    """The spec's cells: for a zoo entry, framework x run x format; for a user's file
    (`file:`), one per format (`convbench.study.user`). `memory`: the cap a built-in dataset
    resized for a user's model must fit in."""
    preset = PRESETS[spec.preset]
    runs = spec.runs or preset["runs"]
    n_test = {None: preset["n_test"], "all": None}.get(spec.n_test, spec.n_test)
    measures = MeasureOptions(**spec.measures.model_dump(), explain=spec.explain,
                              explain_samples=spec.explain_samples)
    cells = []
    for entry in spec.models:
        if isinstance(entry, UserModelEntry):
            from convbench.study.user import user_cells

            cells += user_cells(spec, entry, measures, n_test, data_dir, memory)
            continue
        dataset = entry.dataset or ZOO.get(entry.model).dataset
        for framework in spec.frameworks:
            for run in range(runs):
                train = preset_config(spec.preset, framework, entry.model, dataset,
                                      seed=spec.seed + run, **spec.train.model_dump())
                if entry.options:
                    train = type(train)(**{**asdict(train), "model_options": {
                        **train.model_options, **entry.options}})
                for fmt in spec.formats:
                    options = spec.convert.get(fmt, {})
                    runtime = default_runtime(resolve_target(fmt)[0])
                    runtime_options = spec.runtime_options.get(runtime, {})
                    digest = hashlib.sha256(json.dumps(
                        [train.digest(), options, n_test, measures.digest(), spec.threads,
                         runtime_options, spec.attacks, spec.attack_n],
                        sort_keys=True).encode()).hexdigest()[:16]
                    key = CellKey(framework, entry.model, dataset, fmt, runtime, run, digest)
                    cells.append(Cell(key, train, n_test, options, measures, spec.threads,
                                      data_dir, spec.runtime_options, spec.attacks,
                                      spec.attack_n))
    return cells
