"""scikit-learn's own estimator checks on TabularClassifier / TabularRegressor with each backend kind.

The estimators use small backends (few trees, few epochs) so the ~50 checks per estimator stay quick; what
each check asserts does not depend on the size. Every check that is expected to fail is listed with the
reason it fails by design; ``xfail_strict`` makes a listed check that starts passing fail the suite, so the
list stays true.
"""
from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from pipekit.backends import GBM, RandomForest
from pipekit.ensemble import MeanEnsemble, TorchTabular
from pipekit.sklearn import TabularClassifier, TabularRegressor

ESTIMATORS = [
    TabularClassifier(GBM("classification", n_estimators=20, min_child_samples=5, n_jobs=1)),
    TabularRegressor(GBM("regression", n_estimators=20, min_child_samples=5, n_jobs=1)),
    TabularClassifier(RandomForest("classification", n_estimators=10, n_jobs=1)),
    TabularClassifier(TorchTabular("classification", layers=[32], epochs=3, bs=64)),
    TabularRegressor(TorchTabular("regression", layers=[32], epochs=5, bs=64, lr=3e-2)),
    TabularRegressor(MeanEnsemble([GBM("regression", n_estimators=10, min_child_samples=5, n_jobs=1),
                                   RandomForest("regression", n_estimators=5, n_jobs=1)])),
]

#: checks that fail by design, with the reason (the same for every estimator above)
EXPECTED_FAILURES: dict[str, str] = {}


#: a backend that weighs rows (LightGBM, scikit-learn's forests) is not exactly the same fitted on rows weighed 2 as on
#: the rows repeated: LightGBM bins its features and stops on the rows it has, a forest draws its bootstrap from them
#: (scikit-learn marks its own forests and histogram boosting so)
WEIGHTS_NOT_REPEATS = {"check_sample_weight_equivalence_on_dense_data":
                       "a weight of 2 is not the row repeated: the backend's bins and bootstrap see the rows given"}
#: a backend that weighs every row alike (the net, an ensemble) refuses sample_weight with a ParameterError naming the
#: backends that weigh rows, so every check that fits with weights fails on purpose
NO_WEIGHTS = {name: "this backend weighs every row alike and refuses sample_weight, naming the backends that weigh rows"
              for name in ("check_sample_weights_pandas_series", "check_sample_weights_not_an_array",
                           "check_sample_weights_list", "check_all_zero_sample_weights_error",
                           "check_sample_weights_shape", "check_sample_weights_not_overwritten",
                           "check_sample_weight_equivalence_on_dense_data", "check_classifiers_one_label_sample_weights",
                           "check_sample_weights_invariance")}


def expected_failures(estimator):
    weighs = estimator.backend.takes_weights() if hasattr(estimator.backend, "takes_weights") else False
    return {**EXPECTED_FAILURES, **(WEIGHTS_NOT_REPEATS if weighs else NO_WEIGHTS)}


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.filterwarnings("ignore::UserWarning")  # FillMissing/Categorify report what they fill on new rows
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # the NaN-target check's own
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures, xfail_strict=True)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
