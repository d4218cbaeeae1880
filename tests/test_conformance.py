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
