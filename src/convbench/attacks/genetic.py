"""The genetic word-substitution attack of Alzantot et al. (2018) for text classifiers.

Each member of a population is the review with some words replaced by WordNet synonyms that
the model's vocabulary holds; a perturbation picks one substitutable word and keeps the
synonym that most lowers the true label's probability; parents are drawn by fitness
(1 - p(true label)) through a softmax with `temperature`, children take each word from either
parent. At most `max_substitution` of the review's words change. It needs only predictions.
All reviews advance together, one runner call for all their populations at each step.
"""

from __future__ import annotations

import numpy as np

from convbench.attacks.base import Attack, AttackError, Steps, Target, run_batched
from convbench.attacks.wordnet import synonyms

RESERVED = 3  # ids 0 (padding), 1 (start) and 2 (out of vocabulary) are never substituted


class Genetic(Attack):
    name, needs, kind = "genetic", "predict", "text"
    unperturbed_why = "no word of the review has a synonym in the model's vocabulary"
    defaults = {"population": 20, "generations": 10, "max_substitution": 0.2,
                "candidates": 8, "temperature": 0.3}

    def craft(self, target: Target, x, y, rng, **overrides) -> np.ndarray:
        """Every review attacked together (`run_batched`: each runner call carries the
        candidates of all the reviews still running), each drawing from its own generator."""
        params = {**self.params, **overrides}
        table = self.synonym_table(target)
        if not len(x):
            return x
        seeds = rng.integers(2 ** 63, size=len(x))
        steps = [self._steps(s, int(label), table, np.random.default_rng(int(seed)), params)
                 for s, label, seed in zip(x, y, seeds)]
        return np.stack(run_batched(steps, target.predict))

    def synonym_table(self, target: Target) -> dict[int, np.ndarray]:
        """Token id -> ids of its in-vocabulary synonyms."""
        if not target.vocab:
            raise AttackError("the genetic attack needs the model's vocabulary (a text dataset)")
        ids = {w: i for i, w in target.vocab.items() if i >= RESERVED}
        syn = synonyms(frozenset(ids))
        k = self.params["candidates"]
        return {ids[w]: np.array(sorted(ids[s] for s in near)[:k]) for w, near in syn.items()}

    @staticmethod
    def _steps(seq: np.ndarray, label: int, table, rng, p) -> Steps:
        """The attack on one review (`Steps`: yields populations, is sent their outputs)."""
        positions = np.array([i for i, t in enumerate(seq) if int(t) in table])
        if not len(positions):
            return seq
        budget = max(1, int(p["max_substitution"] * int((seq >= RESERVED).sum())))

        def fitness(pop):
            probs = yield pop
            return 1.0 - probs[:, label], probs.argmax(1)

        def perturb(members: np.ndarray):
            """Each member: one more (or a re-chosen) substitution, the best synonym kept."""
            trials, owners = [], []
            for m, member in enumerate(members):
                changed = np.flatnonzero(member != seq)
                pool = changed if len(changed) >= budget else positions
                pos = int(rng.choice(pool))
                for c in np.append(table[int(seq[pos])], seq[pos]):
                    t = member.copy()
                    t[pos] = c
                    trials.append(t)
                    owners.append(m)
            trials, owners = np.stack(trials), np.array(owners)
            fit, _ = yield from fitness(trials)
            best = [np.flatnonzero(owners == m)[np.argmax(fit[owners == m])]
                    for m in range(len(members))]
            return trials[best]

        pop = yield from perturb(np.repeat(seq[None], p["population"], axis=0))
        for _ in range(p["generations"]):
            fit, labels = yield from fitness(pop)
            elite = int(np.argmax(fit))
            if labels[elite] != label:
                return pop[elite]
            weights = np.exp((fit - fit.max()) / p["temperature"])
            parents = rng.choice(len(pop), size=(len(pop) - 1, 2), p=weights / weights.sum())
            pick = rng.random((len(pop) - 1, len(seq))) < 0.5
            children = np.where(pick, pop[parents[:, 0]], pop[parents[:, 1]])
            for child in children:  # crossover may exceed the budget: undo the excess
                changed = np.flatnonzero(child != seq)
                if len(changed) > budget:
                    undo = rng.choice(changed, len(changed) - budget, replace=False)
                    child[undo] = seq[undo]
            pop = np.concatenate([pop[elite:elite + 1], (yield from perturb(children))])
        fit, _ = yield from fitness(pop)
        return pop[int(np.argmax(fit))]


def decode(ids: np.ndarray, vocab: dict[int, str]) -> str:
    """The words of a token-id sequence (padding and the start marker dropped)."""
    return " ".join(vocab.get(int(i), "<oov>") for i in ids if int(i) not in (0, 1))
