"""The study spec (YAML), validated with pydantic; errors name the bad key and suggest one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from convbench.registry import suggest


class SpecError(ValueError):
    """A study spec that cannot be run; the message says which key and what to write."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelEntry(_Strict):
    model: str
    dataset: str | None = None  # None: the zoo's default dataset for the model
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _known_model(cls, v):
        from convbench.models import ZOO

        if v not in ZOO:
            raise ValueError(f"unknown model {v!r}.{suggest(v, ZOO.names())} "
                             f"Known: {', '.join(ZOO.names())}")
        return v

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v):
        from convbench.data import DATASETS

        if v is not None and v not in DATASETS:
            raise ValueError(f"unknown dataset {v!r}.{suggest(v, DATASETS.names())} "
                             f"Known: {', '.join(DATASETS.names())}")
        return v


class DataEntry(_Strict):
    """A user's data: `path` (an .npz with arrays x and y, a .csv with a label column, or a
    folder of images in class subfolders) or `synthetic` N random inputs in `range`; with the
    preprocessing that turns its values into the model's inputs."""

    path: str | None = None
    synthetic: int | None = Field(None, ge=1)
    range: tuple[float, float] = (0.0, 1.0)
    label_column: str | None = None
    scale: float | None = None  # None: 1/255 for 8-bit images, else 1
    mean: list[float] | None = None
    std: list[float] | None = None
    layout: Literal["nchw", "nhwc"] | None = None  # of the given arrays; None: from shapes
    dtype: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _one_source(self):
        if (self.synthetic is None) == (self.path is None):
            raise ValueError("give either path (a file or folder) or synthetic (a count)")
        return self

    def source(self):
        from convbench.data.user import DataSource, Prep

        prep = Prep(self.scale, tuple(self.mean) if self.mean else None,
                    tuple(self.std) if self.std else None, self.layout, self.dtype)
        if self.synthetic:
            return DataSource("synthetic", count=self.synthetic, low=self.range[0],
                              high=self.range[1], prep=prep, seed=self.seed)
        return DataSource.from_path(self.path, label_column=self.label_column, prep=prep,
                                    seed=self.seed)


class UserModelEntry(_Strict):
    """A user's own model file, assessed on a built-in `dataset` or on the user's `data`."""

    file: str
    framework: Literal["torch", "keras", "onnx"] | None = None  # None: read from the file
    factory: str | None = None  # MODULE:FUNCTION for a PyTorch state_dict
    custom_objects: str | None = None  # a module of registered Keras classes
    trust_model: bool = False
    input_shape: list[int] | None = None  # one sample, in the model's layout
    dataset: str | None = None
    data: DataEntry | None = None

    @model_validator(mode="after")
    def _one_data(self):
        if (self.data is None) == (self.dataset is None):
            raise ValueError("give either dataset (a built-in one) or data (your own)")
        return self

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v):
        return ModelEntry._known_dataset(v)


def _entry_kind(v: Any) -> str:
    return "file" if (isinstance(v, dict) and "file" in v) or isinstance(v, UserModelEntry) \
        else "zoo"


def _known_target(v: str) -> str:
    from convbench.convert import TARGETS

    if v not in TARGETS:
        raise ValueError(f"unknown format {v!r}.{suggest(v, list(TARGETS))} "
                         f"Known: {', '.join(TARGETS)}")
    return v


class TrainOverrides(_Strict):
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    n_train: int | None = Field(None, ge=1)


class MeasuresSpec(_Strict):
    latency_batch_sizes: list[int] = Field(default_factory=lambda: [1, 32, 128])
    latency_warmup: int = Field(3, ge=0)  # at least; more until the time per batch settles
    latency_repeats: int = Field(20, ge=1)  # at least; more until the interval is narrow
    memory: bool = True
    latency_target_ci: float = Field(0.05, gt=0, lt=1)  # +- of the median's 95% interval
    latency_time_cap: float = Field(4.0, gt=0)  # seconds per batch size, both models
    # seconds timing waits for other cells' computing before it is put off to the study's
    # end; null: it waits (a single assessment has no end to put it off to)
    latency_wait: float | None = Field(10.0, ge=0)


class StudySpec(_Strict):
    name: str = "study"
    preset: Literal["smoke", "quick", "paper"] = "quick"
    frameworks: list[Literal["torch", "keras"]] = Field(default_factory=lambda: ["torch", "keras"])
    # a zoo model (model: NAME) or a user's file (file: PATH)
    models: list[Annotated[Annotated[ModelEntry, Tag("zoo")] | Annotated[UserModelEntry,
                                                                         Tag("file")],
                           Discriminator(_entry_kind)]]
    formats: list[str] = Field(default_factory=lambda: ["onnx"])
    runs: int | None = Field(None, ge=1)
    seed: int = 0
    n_test: int | Literal["all"] | None = None  # None: the preset's; "all": the whole split
    train: TrainOverrides = Field(default_factory=TrainOverrides)
    convert: dict[str, dict[str, Any]] = Field(default_factory=dict)
    measures: MeasuresSpec = Field(default_factory=MeasuresSpec)
    threads: int | None = Field(None, ge=1)
    # options of each runtime, e.g. {coreml: {engine: interpreter}, onnxruntime: {providers: [..]}}
    runtime_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # RQ3: attacks as names or {name: fgsm, eps: 0.3, ...}; inputs both models get right
    # (`attack_n` of them, or the attack's own `n`)
    attacks: list[str | dict[str, Any]] = Field(default_factory=list)
    attack_n: int | None = Field(1000, ge=1)
    # where and why each conversion departs, op by op (`convbench explain`): true, false, or
    # on_flip (cells with a label flip or outputs apart beyond 1e-4 relative); rows traced
    explain: bool | Literal["on_flip"] = False
    explain_samples: int = Field(8, ge=1)

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, v):
        return [_known_target(f) for f in v]

    @field_validator("attacks")
    @classmethod
    def _known_attacks(cls, v):
        from convbench.attacks import make_attack
        from convbench.registry import UnknownNameError

        out = []
        for entry in v:
            entry = {"name": entry} if isinstance(entry, str) else dict(entry)
            if "name" not in entry:
                raise ValueError("each attack needs a name, e.g. {name: fgsm, eps: 0.3}")
            n = entry.pop("n", None)  # this attack's inputs, when not attack_n
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ValueError(f"attack {entry['name']!r}: n is the number of inputs it "
                                 f"attacks, a whole number >= 1, not {n!r}")
            try:
                out.append({"name": entry["name"], **make_attack(entry).identity(),
                            **({"n": n} if n else {})})
            except UnknownNameError as e:
                raise ValueError(str(e)) from None
        return out

    @field_validator("runtime_options")
    @classmethod
    def _known_runtimes(cls, v):
        from convbench.runtimes import RUNNERS

        for name in v:
            if name not in RUNNERS:
                raise ValueError(f"unknown runtime {name!r}.{suggest(name, RUNNERS.names())} "
                                 f"Known: {', '.join(RUNNERS.names())}")
        return v


def _explain(err: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for e in err.errors():
        # (without the tag of the kind of model entry, "zoo" or "file")
        where = ".".join(str(p) for p in e["loc"] if p not in ("zoo", "file")) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            known = _fields_at(model, e["loc"][:-1])
            msg = (f"unknown key.{suggest(str(e['loc'][-1]), known)} "
                   f"Allowed here: {', '.join(known)}")
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def _fields_at(model: type[BaseModel], loc) -> list[str]:
    """The field names allowed at a location of the spec (for 'did you mean')."""
    for part in loc:
        if part in ("zoo", "file"):  # which kind of model entry
            model = ModelEntry if part == "zoo" else UserModelEntry
            continue
        if isinstance(part, int) or part not in model.model_fields:
            continue
        ann = model.model_fields[part].annotation
        inner = getattr(ann, "__args__", (ann,))
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)),
                     model)
    return sorted(model.model_fields)


def parse_spec(data: Any, source: str = "spec") -> StudySpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a study spec is a YAML mapping (name:, models:, ...)")
    try:
        return StudySpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{source} is not a valid study spec:\n{_explain(e, StudySpec)}") from None


def load_spec(path: str | Path) -> StudySpec:
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: no such study spec; see examples/*.yaml")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML ({e})") from None
    return parse_spec(data, str(p))
