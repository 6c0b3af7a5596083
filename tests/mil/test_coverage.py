"""`convbench coreml ops --all`: every MIL op and NeuralNetwork layer Core ML defines, which the
interpreters implement, and which coremltools' converters emit (all of those, but custom
layers)."""

from convbench.mil.coverage import mil_ops, nn_layers


def test_every_op_and_layer_the_converters_emit_is_implemented():
    ops, layers = {e.name: e for e in mil_ops()}, {e.name: e for e in nn_layers()}
    assert len(ops) >= 165 and len(layers) >= 155  # the whole of iOS15-iOS18, the whole proto
    for name in ("conv", "layer_norm", "scaled_dot_product_attention", "classify", "resize",
                 "coreml_update_state"):
        assert ops[name].emitted and ops[name].implemented, name
    assert ops["scaled_dot_product_attention"].opsets == ("iOS18",)
    assert ops["resize"].opsets == ("iOS17", "iOS18")
    for name in ("mvn", "batchedMatmul", "softmaxND", "gelu", "convolution"):
        assert layers[name].emitted and layers[name].implemented, name
    assert [e.name for e in ops.values() if e.emitted and not e.implemented] == []
    assert [e.name for e in layers.values() if e.emitted and not e.implemented] == ["custom"]
    assert layers["custom"].note  # says why it cannot be


def test_cli_lists_them_all(capsys):
    import pytest

    from convbench.cli.main import main

    assert main(["coreml", "ops", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ML Program (MIL ops, iOS15-iOS18): ")
    assert any(line.split()[:3] == ["mvn", "implemented", "emitted"] for line in lines)
    assert any(line.split()[:2] == ["custom", "MISSING"] for line in lines)
    with pytest.raises(SystemExit, match="--all"):
        main(["coreml", "ops"])
