from __future__ import annotations

import numpy as np
import pytest

from sitn_tf.retrieval import data, item_features, mutual_information

HEADER = "item_id\tdomain\tcategory\tbrand\ttitle\tprice_bucket\ttags"


def _write(tmp_path, rows, header=HEADER):
    path = tmp_path / "items.tsv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_load_items_tsv_encodes_values_and_counts_what_it_skips(tmp_path):
    rows = [
        "g1\tgames\taction\tacme\tA\t2\tfun|loud",
        "t1\ttoys\tblocks\tlego\tT\t1\tkids",  # other domain
        "g2\tgames\tpuzzle\t\tB\t2\tfun",  # no brand: unknown
        "g9\tgames\taction\tacme\tC\t0\t",  # never clicked
    ]
    ids = {"g1": 1, "g2": 2, "g3": 3}
    features = item_features.load_item_features(_write(tmp_path, rows), ids, "games")
    assert features.columns["category"].tolist() == [0, 1, 2, 0]
    assert features.columns["brand"].tolist() == [0, 1, 0, 0]
    assert features.columns["price_bucket"].tolist() == [0, 1, 1, 0]
    # Tags sorted per item, 1-based, 0-padded: fun=1, loud=2.
    assert features.tags.tolist() == [[0, 0], [1, 2], [1, 0], [0, 0]]
    assert features.vocab == {"category": 3, "brand": 2, "price_bucket": 2, "tags": 3}
    assert features.skipped == {
        "domain_toys": 1,
        "not_in_interactions": 1,
        "candidates_without_row": 1,
    }
    assert features.table()["tags"] == [[1, 2], [1], []]


@pytest.mark.parametrize(
    "rows,header,message",
    [
        (["g1\tgames\taction"], HEADER, "items.tsv:2: expected 7"),
        (["\tgames\ta\tb\tt\t1\tx"], HEADER, "items.tsv:2: empty item_id"),
        (["g1\tgames", "g1\tgames"], "item_id\tdomain", "items.tsv:3: item 'g1' already"),
        (["g1\tgames"], "item\tdomain", "items.tsv:1: the header lacks"),
    ],
)
def test_bad_items_name_file_and_line(tmp_path, rows, header, message):
    with pytest.raises(ValueError, match=message):
        item_features.load_item_features(_write(tmp_path, rows, header), {"g1": 1}, "games")


def test_synthetic_features_are_correlated_so_cfm_groups_category_and_brand():
    seqs = data.synthetic(num_users=5, num_clusters=6, items_per_cluster=20, seed=0)
    features = item_features.synthetic_item_features(seqs.item_cluster, seed=0)
    assert features.num_candidates == seqs.num_candidates
    np.testing.assert_array_equal(features.columns["category"][1:], seqs.item_cluster[1:] + 1)
    assert features.tags.shape[1] <= 3 and (features.tags[1:, 0] > 0).all()
    names, matrix = mutual_information.mutual_information(features.table(), normalized=True)
    assert names == list(item_features.FEATURES)
    groups = mutual_information.correlated_groups(matrix)  # F = 5: pairs
    partner = {
        names[f]: names[int(np.flatnonzero(groups[f] & (np.arange(5) != f))[0])] for f in range(5)
    }
    # Brand determines category: they are each other's partners.
    assert partner["category"] == "brand" and partner["brand"] == "category"


def test_id_only_features_know_nothing():
    features = item_features.id_only_features(4)
    assert features.vocab == {"category": 1, "brand": 1, "price_bucket": 1, "tags": 1}
    assert not features.tags.any() and not features.columns["brand"].any()
