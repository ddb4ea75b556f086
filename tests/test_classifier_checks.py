"""scikit-learn's common estimator checks on HadaSmileClassifier.

The estimator honestly declares ``two_d_array=False`` (its X are landmark videos), and for such
estimators ``parametrize_with_checks`` runs only ``check_estimator_cloneable`` and skips the rest,
because every other check in sklearn's suite feeds generated 2-D feature matrices. The checks of
the suite that need no data at all are run explicitly below; the data-dependent contract (fit
idempotence, unchanged params, pickling, one-class and NaN errors, ...) is tested on landmark
videos in tests/test_classifier.py.
"""

import pytest
from sklearn.utils import estimator_checks as ec
from sklearn.utils.estimator_checks import parametrize_with_checks

from hadasklearn import HadaSmileClassifier

CHEAP = dict(dim=16, depth=1, clip_length=8, max_epochs=2, early_stopping=False, random_state=0)

# Checks of sklearn's suite that take no data: they read params, tags, repr and class layout.
DATA_FREE_CHECKS = [
    ec.check_estimator_cloneable,
    ec.check_estimator_repr,
    ec.check_estimator_tags_renamed,
    ec.check_valid_tag_types,
    ec.check_no_attributes_set_in_init,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_mixin_order,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
]


@parametrize_with_checks([HadaSmileClassifier(**CHEAP)], expected_failed_checks=lambda est: {})
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("check", DATA_FREE_CHECKS, ids=lambda c: c.__name__)
def test_data_free_sklearn_checks(check):
    check(HadaSmileClassifier.__name__, HadaSmileClassifier(**CHEAP))
