"""Datasets: one module each, registered by name; `get_dataset(name, **options)` builds one."""

from convbench.data.base import DATASETS, Dataset, DataError, get_dataset, stratified_subset

DATASETS.register_lazy("digits", "convbench.data.digits:Digits")
DATASETS.register_lazy("mnist", "convbench.data.mnist:Mnist")
DATASETS.register_lazy("cifar10", "convbench.data.cifar10:Cifar10")
DATASETS.register_lazy("imdb", "convbench.data.imdb:Imdb")

__all__ = ["DATASETS", "Dataset", "DataError", "get_dataset", "stratified_subset"]
