"""`convbench data fetch|info` and `convbench train`."""

from __future__ import annotations


def fetch(args) -> int:
    from convbench.data.fetch import fetch as fetch_files

    for p in fetch_files(args.name, args.data_dir):
        print(p)
    return 0


def info(args) -> int:
    from convbench.data import DATASETS, DataError, get_dataset
    from convbench.data.base import data_root

    print(f"data dir: {data_root(args.data_dir)}")
    for name in DATASETS.names():
        ds = get_dataset(name, args.data_dir)
        try:
            n = len(ds.arrays("test")[1])
            state = f"present ({n} test samples)"
        except DataError:
            state = f"missing: expected {ds.files}"
        print(f"  {name:8s} {state}")
    return 0


def train(args) -> int:
    from convbench.models import ZOO
    from convbench.training import preset_config
    from convbench.training import train as train_model

    dataset = args.dataset or ZOO.get(args.model).dataset
    cfg = preset_config(args.preset, args.framework, args.model, dataset, seed=args.seed,
                        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        n_train=args.n_train)
    result = train_model(cfg, args.out, args.data_dir)
    last = result.history[-1] if result.history else {}
    print(f"{result.artifact.path}  ({result.seconds:.1f} s, train accuracy "
          f"{last.get('accuracy', float('nan')):.4f}; holds: {result.artifact.meta['holds']})")
    return 0
