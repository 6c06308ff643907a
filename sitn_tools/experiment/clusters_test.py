import math

import matplotlib.image
import numpy as np
import pytest

from sitn_tools.experiment import clusters


def test_identical_sets_give_one():
    x = np.random.default_rng(0).standard_normal((5, 8))
    # Scaling rows changes nothing: cosine is scale-invariant.
    assert clusters.nearest_cross_domain_cosine(x, 3.0 * x[::-1]) == pytest.approx(1.0)


def test_orthogonal_sets_give_zero():
    eye = np.eye(4)
    assert clusters.nearest_cross_domain_cosine(eye[:2], eye[2:]) == pytest.approx(0.0)


def test_two_by_two_by_hand():
    source = np.array([[1.0, 0.0], [0.0, 1.0]])
    target = np.array([[1.0, 1.0], [1.0, -1.0]])
    # cos matrix: s0·t0 = 1/sqrt2, s0·t1 = 1/sqrt2, s1·t0 = 1/sqrt2, s1·t1 = -1/sqrt2.
    # Row maxima: 1/sqrt2, 1/sqrt2. Column maxima: 1/sqrt2, 1/sqrt2. Mean 1/sqrt2.
    r = 1 / math.sqrt(2)
    assert clusters.nearest_cross_domain_cosine(source, target) == pytest.approx(r)
    target = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, -1.0]])
    # cos: s0 -> (1, -1, 0), s1 -> (0, 0, -1). Row maxima: 1, 0.
    # Column maxima: t0 1, t1 0, t2 0. Mean of (1, 0, 1, 0, 0) = 0.4.
    assert clusters.nearest_cross_domain_cosine(source, target) == pytest.approx(0.4)


def test_cosine_bad_inputs():
    with pytest.raises(ValueError, match="dimensions differ"):
        clusters.nearest_cross_domain_cosine(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"rows \[1\] are all zero"):
        clusters.nearest_cross_domain_cosine(np.array([[1.0, 0.0], [0.0, 0.0]]), np.eye(2))
    with pytest.raises(ValueError, match="must have shape"):
        clusters.nearest_cross_domain_cosine(np.ones(3), np.ones((2, 3)))


def test_random_baseline_is_low_in_high_dim_and_reproducible():
    a = clusters.random_baseline((8, 64), seed=3, n_draws=50)
    b = clusters.random_baseline((8, 64), seed=3, n_draws=50)
    c = clusters.random_baseline((8, 64), seed=4, n_draws=50)
    assert a == b
    assert a != c
    mean, std = a
    assert 0.0 < mean < 0.6 and std > 0
    # Max of 8 roughly N(0, 1/64) cosines: about sqrt(2 ln 8 / 64) ~ 0.25, well under 0.6.
    assert a.mean == pytest.approx(math.sqrt(2 * math.log(8) / 64), abs=0.1)
    # Nearly identical directions are unlikely at random: far below a learned match of 1.
    low_dim = clusters.random_baseline((8, 2), seed=3, n_draws=50)
    assert low_dim.mean > a.mean


def test_random_baseline_bad_arguments():
    with pytest.raises(ValueError, match="`n_draws` must be an int >= 2"):
        clusters.random_baseline((4, 8), seed=0, n_draws=1)
    with pytest.raises(ValueError, match="`shape` must be"):
        clusters.random_baseline((4, 0), seed=0)
    with pytest.raises(ValueError, match="dimensions differ"):
        clusters.random_baseline((4, 8), seed=0, target_shape=(4, 9))


def test_entropy_uniform_is_one():
    usage = clusters.cluster_usage_entropy(np.arange(12) % 4, num_clusters=4)
    assert usage["entropy"] == pytest.approx(1.0)
    assert usage["effective_clusters"] == pytest.approx(4.0)
    assert usage["unused"] == 0


def test_entropy_collapse_is_zero():
    probs = np.zeros((6, 5))
    probs[:, 2] = 1.0
    for soft in (False, True):
        usage = clusters.cluster_usage_entropy(probs, num_clusters=5, soft=soft)
        assert usage["entropy"] == pytest.approx(0.0)
        assert usage["effective_clusters"] == pytest.approx(1.0)
        assert usage["unused"] == 4


def test_entropy_hand_case():
    # Argmax of the rows: clusters 0, 0, 1, 3 -> usage (1/2, 1/4, 0, 1/4).
    scores = np.array(
        [
            [0.9, 0.1, 0.0, 0.2],
            [0.5, 0.4, 0.3, -1.0],
            [0.1, 0.8, 0.2, 0.3],
            [0.0, 0.1, 0.2, 0.7],
        ]
    )
    usage = clusters.cluster_usage_entropy(scores, num_clusters=4)
    # H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2; normalised by ln 4 = 2 ln 2 -> 0.75.
    np.testing.assert_allclose(usage["usage"], [0.5, 0.25, 0.0, 0.25])
    assert usage["entropy"] == pytest.approx(0.75)
    assert usage["effective_clusters"] == pytest.approx(2**1.5)
    assert usage["unused"] == 1
    # Soft: column sums of probabilities (0.5, 0.5) and (1, 0) -> usage (0.75, 0.25).
    soft = clusters.cluster_usage_entropy(
        np.array([[0.5, 0.5], [1.0, 0.0]]), num_clusters=2, soft=True
    )
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert soft["entropy"] == pytest.approx(h / math.log(2))


@pytest.mark.parametrize(
    "x, kwargs, message",
    [
        (np.array([0, 4]), {"num_clusters": 4}, r"rows \[1\] are outside \[0, 4\)"),
        (np.ones((3, 5)), {"num_clusters": 4}, "expected 4 columns"),
        (np.array([[0.5, 0.6]]), {"num_clusters": 2, "soft": True}, r"rows \[0\] do not sum"),
        (np.array([[-0.5, 1.5]]), {"num_clusters": 2, "soft": True}, "non-negative"),
        (np.array([0, 1]), {"num_clusters": 1}, "`num_clusters` must be an int >= 2"),
        (np.array([0.0, 1.0]), {"num_clusters": 2}, "must be integers"),
        (np.zeros((0, 3)), {"num_clusters": 3}, "no users"),
    ],
)
def test_entropy_bad_inputs(x, kwargs, message):
    with pytest.raises(ValueError, match=message):
        clusters.cluster_usage_entropy(x, **kwargs)


def test_tsne_figure_writes_deterministic_png(tmp_path):
    rng = np.random.default_rng(0)
    by_k = {k: (rng.standard_normal((k, 16)), rng.standard_normal((k, 16))) for k in (8, 4)}
    path = tmp_path / "fig3.png"
    results = clusters.tsne_figure(by_k, str(path), seed=0, n_draws=20)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    image = matplotlib.image.imread(str(path))
    # Two panels side by side: 2 * 4.8 in x 4.4 in at 100 dpi.
    assert image.shape[:2] == (440, 960)
    assert sorted(results) == [4, 8]
    source, target = by_k[4]
    assert results[4]["nearest_cross_domain_cosine"] == pytest.approx(
        clusters.nearest_cross_domain_cosine(source, target)
    )
    mean, std = clusters.random_baseline((4, 16), seed=0, n_draws=20)
    assert results[4]["random_clusters_cosine_mean"] == mean
    assert results[4]["random_clusters_cosine_std"] == std
    assert results[8]["num_clusters"] == 8 and results[8]["random_draws"] == 20
    again = tmp_path / "again.png"
    clusters.tsne_figure(by_k, str(again), seed=0, n_draws=20)
    assert again.read_bytes() == data


def test_tsne_figure_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="K=4: source has 3 clusters"):
        clusters.tsne_figure({4: (np.ones((3, 2)), np.ones((3, 2)))}, str(tmp_path / "x.png"), 0)
    with pytest.raises(ValueError, match="empty"):
        clusters.tsne_figure({}, str(tmp_path / "x.png"), 0)
