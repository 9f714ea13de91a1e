"""DeLong's paired AUC test against references computed another way: the AUCs against
`exact.roc_auc`, the covariance against DeLong's definition over every (positive, negative)
pair (O(m n), no ranks), and the standard error against a paired bootstrap."""

import numpy as np
import pytest

from unified_embedding.metrics.delong import auc_covariance, compare_aucs, midranks
from unified_embedding.metrics.exact import roc_auc


def brute_force(labels: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) as written: psi(x, y) = 1 if x > y, 1/2 if x == y, else 0 over every
    (positive x, negative y) pair; V10 and V01 are its row and column means."""
    aucs, v10, v01 = [], [], []
    for s in scores:
        x, y = s[labels == 1][:, None], s[labels == 0][None, :]
        psi = (x > y) + 0.5 * (x == y)  # (m, n)
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    m, n = len(v10[0]), len(v01[0])
    return np.array(aucs), np.atleast_2d(np.cov(v10) / m + np.cov(v01) / n)


def correlated_scores(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels at ~20% CTR and two models sharing a signal, rounded so that ties happen."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.2).astype(np.int64)
    shared = labels * 0.8 + rng.normal(size=rows)
    a = np.round(shared + 0.5 * rng.normal(size=rows), 1)
    b = np.round(shared + 0.9 * rng.normal(size=rows) + 0.3 * labels, 1)
    return labels, a, b


def test_midranks_average_tied_ranks() -> None:
    #  values  3  1  3  2  3
    #  ranks   4  1  4  2  4     (the three 3s share ranks 3, 4, 5)
    np.testing.assert_array_equal(midranks(np.array([3.0, 1, 3, 2, 3])), [4, 1, 4, 2, 4])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_delong_equals_the_pairwise_definition(seed: int) -> None:
    labels, a, b = correlated_scores(150, seed)
    aucs, cov = auc_covariance(labels, a, b)
    expected_aucs, expected_cov = brute_force(labels, a, b)
    np.testing.assert_allclose(aucs, expected_aucs, rtol=1e-12)
    np.testing.assert_allclose(aucs, [roc_auc(labels, a), roc_auc(labels, b)], rtol=1e-12)
    np.testing.assert_allclose(cov, expected_cov, rtol=1e-10, atol=1e-15)
    assert cov.shape == (2, 2) and cov[0, 1] > 0  # the shared signal correlates the AUCs


def test_standard_error_agrees_with_a_paired_bootstrap() -> None:
    labels, a, b = correlated_scores(800, 3)
    comparison = compare_aucs(labels, a, b)
    rng = np.random.default_rng(4)
    differences = []
    for _ in range(400):  # resample rows, each with both models' scores: a paired bootstrap
        index = rng.integers(0, labels.size, labels.size)
        differences.append(roc_auc(labels[index], a[index]) - roc_auc(labels[index], b[index]))
    assert comparison.std_error == pytest.approx(np.std(differences), rel=0.2)
    assert comparison.difference == pytest.approx(roc_auc(labels, a) - roc_auc(labels, b))
    assert comparison.lower < comparison.difference < comparison.upper
    assert comparison.upper - comparison.lower == pytest.approx(2 * 1.959964 * comparison.std_error)


def test_interval_and_p_value_follow_the_normal_approximation() -> None:
    labels, a, b = correlated_scores(400, 5)
    wide, narrow = compare_aucs(labels, a, b, 0.99), compare_aucs(labels, a, b, 0.5)
    assert wide.lower < narrow.lower < narrow.upper < wide.upper
    # p < 0.05 exactly when the 95% interval leaves out 0
    for seed in range(6):
        labels, a, b = correlated_scores(300, seed)
        c = compare_aucs(labels, a, b)
        assert (c.p_value < 0.05) == (c.lower > 0 or c.upper < 0)


def test_identical_models_differ_by_exactly_zero() -> None:
    labels, a, _ = correlated_scores(100, 6)
    same = compare_aucs(labels, a, a * 3 + 1)  # a monotone transform ranks every pair alike
    assert same.difference == 0 and same.std_error == 0
    assert (same.lower, same.upper, same.p_value) == (0, 0, 1)
    assert same.to_dict()["method"] == "delong"


def test_refuses_too_few_rows_of_a_class_and_bad_confidence() -> None:
    with pytest.raises(ValueError, match=r"at least 2 positive and 2 negative.*1 positives"):
        compare_aucs([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3], [0.5, 0.4, 0.3, 0.2])
    with pytest.raises(ValueError, match="`confidence` should be in"):
        compare_aucs([1, 1, 0, 0], [1, 2, 3, 4], [1, 2, 3, 4], confidence=1.0)
    with pytest.raises(ValueError, match="same shape"):
        compare_aucs([1, 1, 0, 0], [1, 2, 3, 4], [1, 2, 3])
