"""Every registered component, in every registry, passes the conformance checks of tests/conformance.py."""
import pytest

from conformance import check_component, conformance_cases, missing_examples

CASES = conformance_cases()


def test_every_class_that_needs_arguments_has_an_example():
    assert missing_examples() == []


def test_every_registry_is_covered():
    kinds = {factory().registry_kind for _, factory in CASES}
    assert {"transform", "block", "getter", "splitter", "recipe", "proc", "model", "loss", "metric",
            "callback"} <= kinds


@pytest.mark.parametrize("name, factory", CASES, ids=[name for name, _ in CASES])
def test_conformance(name, factory):
    # the optional boosters are checked where their package is installed (pipekit never requires them)
    optional = {"pipekit.backends.XGBoost": "xgboost", "pipekit.backends.CatBoost": "catboost"}
    if name in optional:
        pytest.importorskip(optional[name])
    check_component(factory())


def test_record_defaults_check_catches_an_undeclared_or_misdeclared_field(monkeypatch):
    """A field added to a record without declaring it, or declared with another default than __init__'s, would
    change procs_signature for every older file: the record-defaults check refuses both."""
    from conformance import check_record_defaults, examples

    from pipekit.tabular import TabularProcessor

    obj = examples()["pipekit.tabular.TabularProcessor"]()
    check_record_defaults(obj)
    monkeypatch.setattr(TabularProcessor, "record_defaults", {"state.y_type_": "str"})
    with pytest.raises(AssertionError, match=r"record params \['skipinitialspace'\] were not written by format 2"):
        check_record_defaults(obj)
    monkeypatch.setattr(TabularProcessor, "record_defaults", {"params.skipinitialspace": True, "state.y_type_": "str"})
    with pytest.raises(AssertionError, match=r"record_defaults\['params.skipinitialspace'\] = True, but __init__'s "
                                             r"default is False"):
        check_record_defaults(obj)
