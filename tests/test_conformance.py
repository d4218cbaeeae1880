"""Every registered component, in every registry, passes the conformance checks of pipekit.testing."""
import pytest

from pipekit.testing import check_component, conformance_cases, missing_examples

CASES = conformance_cases()


def test_every_class_that_needs_arguments_has_an_example():
    assert missing_examples() == []


def test_every_registry_is_covered():
    kinds = {factory().registry_kind for _, factory in CASES}
    assert {"transform", "block", "getter", "splitter", "recipe", "proc", "model", "loss", "metric",
            "callback"} <= kinds


@pytest.mark.parametrize("name, factory", CASES, ids=[name for name, _ in CASES])
def test_conformance(name, factory):
    check_component(factory())
