"""The genetic word-substitution attack on a small LSTM trained on IMDb."""


import numpy as np
import pytest

from conftest import need_data, need_wordnet
from convbench.attacks import AttackError, make_attack
from convbench.attacks.genetic import decode
from convbench.attacks.targets import target_for
from convbench.runtimes import open_runner
from convbench.training import preset_config, train
from convbench.training.run import dataset_for


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    need_data("imdb")
    cfg = preset_config("smoke", "torch", "lstm", "imdb", epochs=4, n_train=3000, lr=0.003,
                        batch_size=64)
    art = train(cfg, tmp_path_factory.mktemp("lstm")).artifact
    ds = dataset_for("lstm", "imdb", **cfg.data_options)
    x, y, _ = ds.arrays("test", n=400)
    runner = open_runner(art)
    runner.load()
    vocab = ds.vocabulary()
    target = target_for(art, runner, 2, x.shape[1:], vocab)
    ok = np.flatnonzero(target.predict(x).argmax(1) == y)[:25]
    yield target, x[ok], y[ok], vocab
    runner.close()


def test_genetic_attack_substitutes_synonyms_within_budget(lstm):
    need_wordnet()
    target, x, y, vocab = lstm
    attack = make_attack({"name": "genetic", "max_substitution": 0.2})
    table = attack.synonym_table(target)
    adv = attack.craft(target, x, y, np.random.default_rng(0))
    assert (target.predict(adv).argmax(1) == y).mean() <= 0.8  # from 1.0: it flips labels
    for orig, new in zip(x, adv):
        changed = np.flatnonzero(orig != new)
        assert len(changed) <= max(1, int(0.2 * (orig >= 3).sum()))
        for pos in changed:  # a real word of the vocabulary, a WordNet synonym of the original
            assert int(new[pos]) in table[int(orig[pos])]
            assert vocab[int(new[pos])].isalpha()
    text = decode(adv[0], vocab)
    assert isinstance(text, str) and len(text.split()) == int((adv[0] > 1).sum())
    assert "<pad>" not in text


def test_missing_wordnet_is_a_clear_error(lstm, monkeypatch, tmp_path):
    from convbench.attacks import wordnet

    target, x, y, _ = lstm
    monkeypatch.setenv("CONVBENCH_WORDNET", str(tmp_path))
    monkeypatch.setattr(wordnet, "SEARCH", ())
    wordnet.synonyms.cache_clear()
    with pytest.raises(AttackError, match="apt-get install wordnet-base"):
        make_attack("genetic").craft(target, x[:1], y[:1], np.random.default_rng(0))
    wordnet.synonyms.cache_clear()


def test_text_cells_with_the_genetic_attack_in_both_frameworks_and_formats(tmp_path):
    need_data("imdb")
    need_wordnet()
    from convbench.store import Store
    from convbench.study import parse_spec, plan, run_study

    spec = parse_spec({
        "name": "text", "preset": "smoke", "frameworks": ["torch", "keras"],
        "models": [{"model": "lstm", "dataset": "imdb"}], "formats": ["onnx", "coreml"],
        "n_test": 200, "train": {"epochs": 3, "n_train": 2000, "lr": 0.003, "batch_size": 64},
        "convert": {"onnx": {"exporter": "torchscript"}, "coreml": {"route": "torch-twin"}},
        "measures": {"latency_batch_sizes": [], "memory": False},
        "attacks": [{"name": "genetic", "population": 8, "generations": 4}, "fgsm"],
        "attack_n": 10})
    with Store(tmp_path / "s.db") as store:
        results = run_study(plan(spec), store)
        cells = list(store.cells())
    assert [r.status.value for r in results] == ["ok"] * 4, [r.message for r in results]
    for c in cells:
        m = c.metrics
        assert c.outcome("attack", "genetic").status.value == "ok"
        assert c.outcome("attack", "fgsm").status.value == "skipped"
        n = m.get("inputs", attack="genetic", direction="forward")
        assert n > 0 and m.get("inputs", attack="genetic", direction="reverse") == n
        assert 0 <= m.get("substitution", stat="mean", attack="genetic",
                          direction="forward") <= 0.2
        for ex in c.info["attack_examples"]["genetic"]:
            assert ex["original"] != ex["adversarial"] and "<pad>" not in ex["adversarial"]
    twin = [c for c in cells if (c.key.framework, c.key.format) == ("keras", "coreml")][0]
    assert twin.artifacts["converted"].meta["route"] == "keras-weights-in-torch-twin"
