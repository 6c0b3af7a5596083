import pytest

from convbench.registry import Registry, UnknownNameError, suggest


def test_unknown_name_suggests_the_closest():
    r = Registry("thing")
    r.register("lenet5", 1)
    r.register("resnet18", 2)
    with pytest.raises(UnknownNameError, match=r"unknown thing 'lenet'\. Did you mean 'lenet5'\?"):
        r.get("lenet")


def test_lazy_entry_is_imported_on_first_use():
    r = Registry("thing")
    r.register_lazy("join", "os.path:join")
    assert r.get("join")("a", "b") == "a/b"
    assert r.names() == ["join"]


def test_registering_two_objects_under_one_name_is_refused():
    r = Registry("thing")
    r.register("a", 1)
    with pytest.raises(ValueError, match="twice"):
        r.register("a", 2)


def test_suggest_is_empty_when_nothing_is_close():
    assert suggest("zzz", ["lenet5", "gru"]) == ""
