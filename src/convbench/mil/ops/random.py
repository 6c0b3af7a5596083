"""Random draws (iOS15 random.py).

Each op draws from its documented distribution with a torch generator seeded from its `seed`
(-1: a fresh seed each run). The draws cannot equal those of Apple's generator: what a program
computes from them is comparable in distribution only.
"""

from __future__ import annotations

import torch

from convbench.mil.ops import op
from convbench.mil.ops._util import ints, scalar


def _generator(seed) -> torch.Generator:
    g = torch.Generator()
    s = int(scalar(seed))
    g.manual_seed(s if s >= 0 else int(torch.randint(0, 2**31 - 1, ()).item()))
    return g


@op("random_bernoulli")
def random_bernoulli(shape, prob, seed):
    p = torch.full(ints(shape), float(scalar(prob)))
    return torch.bernoulli(p, generator=_generator(seed))


@op("random_uniform")
def random_uniform(shape, low, high, seed):
    lo, hi = float(scalar(low)), float(scalar(high))
    return torch.rand(ints(shape), generator=_generator(seed)) * (hi - lo) + lo


@op("random_normal")
def random_normal(shape, mean, stddev, seed):
    return torch.randn(ints(shape), generator=_generator(seed)) * float(scalar(stddev)) \
        + float(scalar(mean))


@op("random_categorical")
def random_categorical(x, mode, size, seed):
    """`size` draws with replacement from each distribution of x's last dim (log-probabilities
    under "logits", probabilities under "probs"); the drawn indices as x's dtype."""
    probs = torch.softmax(x.float(), -1) if mode == "logits" else x.float()
    flat = probs.reshape(-1, x.shape[-1])
    drawn = torch.multinomial(flat, int(scalar(size)), replacement=True,
                              generator=_generator(seed))
    return drawn.reshape(*x.shape[:-1], -1).to(x.dtype)
