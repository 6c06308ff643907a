from __future__ import annotations

import numpy as np
import pytest

from sitn_tf.retrieval import mutual_information as mi


def _table():
    # 8 items: brand is a function of category (2 brands per category), price
    # follows the brand, `coin` is independent of everything (balanced).
    category = [0, 0, 0, 0, 1, 1, 1, 1]
    brand = [0, 0, 1, 1, 2, 2, 3, 3]
    price = [0, 0, 1, 1, 0, 0, 1, 1]
    coin = [0, 1, 0, 1, 0, 1, 0, 1]
    return {"category": category, "brand": brand, "price": price, "coin": coin}


def test_raw_mutual_information_by_hand():
    names, matrix = mi.mutual_information(_table())
    assert names == ["category", "brand", "price", "coin"]
    ln2 = np.log(2.0)
    # Brand determines category: I = H(category) = ln 2; H(brand) = ln 4.
    assert matrix[0, 1] == pytest.approx(ln2)
    assert matrix[1, 1] == pytest.approx(2 * ln2)
    # Brand determines price too; category and price are independent.
    assert matrix[1, 2] == pytest.approx(ln2)
    assert matrix[0, 2] == pytest.approx(0.0, abs=1e-12)
    # The independent column shares nothing with the others.
    np.testing.assert_allclose(matrix[3, :3], 0.0, atol=1e-12)
    np.testing.assert_allclose(matrix, matrix.T)


def test_normalized_and_multi_valued_cells():
    table = {"id": list(range(4)), "category": [0, 0, 1, 1], "tags": [[1, 2], [2, 1], [3], [3]]}
    names, raw = mi.mutual_information(table)
    # The id determines every column: its raw MI with a column is that column's entropy.
    assert raw[0, 1] == pytest.approx(np.log(2.0))
    # Tags {1,2} == {2,1}: the tag set is the category here.
    assert raw[1, 2] == pytest.approx(np.log(2.0))
    _, norm = mi.mutual_information(table, normalized=True)
    # sqrt(H(cat) H(cat)) = H(cat): 1; id: ln2 / sqrt(ln4 ln2) = 1/sqrt(2).
    assert norm[1, 2] == pytest.approx(1.0)
    assert norm[0, 1] == pytest.approx(1 / np.sqrt(2.0))


def test_correlated_groups_follow_the_matrix():
    _, matrix = mi.mutual_information(_table())
    groups = mi.correlated_groups(matrix)  # F = 4: groups of 2
    assert groups.sum(axis=1).tolist() == [2, 2, 2, 2]
    # category -> brand, brand -> category (tie with price: lower index),
    # price -> brand, coin -> category (all zero: lower index).
    assert [np.flatnonzero(row).tolist() for row in groups] == [[0, 1], [0, 1], [1, 2], [0, 3]]
    assert mi.correlated_groups(matrix, group_size=3)[2].tolist() == [True, True, True, False]


def test_bad_arguments():
    with pytest.raises(ValueError, match="`columns`"):
        mi.mutual_information({"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="`columns`"):
        mi.mutual_information({})
    with pytest.raises(ValueError, match="`matrix`"):
        mi.correlated_groups(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="`group_size`"):
        mi.correlated_groups(np.zeros((3, 3)), group_size=4)
