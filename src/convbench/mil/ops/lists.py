"""Lists of tensors, TensorFlow's TensorArrays (iOS15 control_flow.py: make_list, list_*).

A list value is a `TensorList`: a Python list of element tensors (None where never written)
and the element shape it was made with. Every write returns a new list, as MIL's values are
immutable, so a list read before a write keeps its old elements.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convbench.mil.dtypes import STORAGE
from convbench.mil.ops import op
from convbench.mil.ops._util import ints, scalar


@dataclass(frozen=True)
class TensorList:
    items: tuple
    elem_shape: tuple
    dtype: torch.dtype

    def element(self, i: int) -> torch.Tensor:
        v = self.items[i]
        return v if v is not None else torch.zeros(self.elem_shape, dtype=self.dtype)

    def written(self, updates: dict[int, torch.Tensor]) -> TensorList:
        items = list(self.items)
        for i, v in updates.items():
            items += [None] * (i + 1 - len(items))
            items[i] = v.to(self.dtype)
        shape = self.elem_shape
        if not shape and updates:  # made without a shape: its elements' shape
            shape = tuple(next(iter(updates.values())).shape)
        return TensorList(tuple(items), shape, self.dtype)


@op("make_list")
def make_list(init_length, dynamic_length, elem_shape, dtype):
    shape = tuple(int(scalar(d)) for d in elem_shape) if elem_shape is not None else ()
    return TensorList((None,) * int(scalar(init_length)), shape, STORAGE.get(dtype, torch.float32))


@op("list_length")
def list_length(ls):
    return torch.tensor(len(ls.items), dtype=torch.int32)


@op("list_write")
def list_write(ls, index, value):
    return ls.written({int(scalar(index)): value})


@op("list_read")
def list_read(ls, index):
    return ls.element(int(scalar(index)))


@op("list_gather")
def list_gather(ls, indices):
    return torch.stack([ls.element(i) for i in ints(indices)])


@op("list_scatter")
def list_scatter(ls, indices, value):
    return ls.written({i: value[k] for k, i in enumerate(ints(indices))})
