from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that

from sitn_tf.retrieval import mutual_information as mi
from sitn_tf.retrieval.mutual_information_beam import PairwiseMutualInformation

TABLE = {
    "id": list(range(8)),
    "category": [0, 0, 0, 0, 1, 1, 1, 1],
    "brand": [0, 0, 1, 1, 2, 2, 3, 3],  # determines category
    "coin": [0, 1, 0, 1, 0, 1, 0, 1],  # independent of category and brand
    "tags": [[1, 2], [2, 1], [3], [3], [4], [4, 5], [5, 4], [4]],
}


def _matches(expected):
    def check(outputs):
        assert len(outputs) == 1
        np.testing.assert_allclose(np.asarray(outputs[0]), expected, atol=1e-12)

    return check


@pytest.mark.parametrize("normalized", [False, True])
def test_beam_matrix_equals_the_numpy_one(normalized):
    names, expected = mi.mutual_information(TABLE, normalized=normalized)
    items = [{name: TABLE[name][row] for name in names} for row in range(8)]
    with beam.Pipeline() as pipeline:
        matrix = (
            pipeline | beam.Create(items) | PairwiseMutualInformation(names, normalized=normalized)
        )
        assert_that(matrix, _matches(expected))
    # Brand determines category: I = H(category) = ln 2; coin shares nothing with them.
    if not normalized:
        assert expected[1, 2] == pytest.approx(np.log(2.0))
        assert expected[3, 1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("names", [[], ["a", "a"]])
def test_bad_arguments(names):
    with pytest.raises(ValueError, match="`names`"):
        PairwiseMutualInformation(names)
