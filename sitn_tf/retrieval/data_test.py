from __future__ import annotations

import numpy as np
import pytest

from sitn_tf.retrieval import data


def _write(tmp_path, rows, header="user_id\titem_id\tdomain\ttimestamp"):
    path = tmp_path / "interactions.tsv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


ROWS = [
    "u1\tg1\tgames\t5",
    "u1\tt1\ttoys\t1",
    "u1\tg2\tgames\t3",
    "u1\tg3\tgames\t3",  # ties with g2: file order decides
    "u2\tg2\tgames\t0",
    "u2\tx9\tbooks\t1",
    "u2\tg4\tgames\t2",
]


def test_target_only_sequences_are_ordered_and_other_rows_counted(tmp_path):
    seqs = data.load_interactions(_write(tmp_path, ROWS), target_domain="games")
    # Ids by first appearance over users: g1=1, g2=2, g3=3, g4=4.
    assert [s.tolist() for s in seqs.sequences] == [[2, 3, 1], [2, 4]]
    assert seqs.num_candidates == seqs.num_items == 5
    assert seqs.skipped == {"domain_toys": 1, "domain_books": 1}


def test_cross_domain_histories_keep_source_items_after_the_candidates(tmp_path):
    seqs = data.load_interactions(_write(tmp_path, ROWS), "games", source_domain="toys")
    assert seqs.num_candidates == 5 and seqs.num_items == 6  # t1 gets id 5
    assert [s.tolist() for s in seqs.sequences] == [[5, 2, 3, 1], [2, 4]]
    assert seqs.skipped == {"domain_books": 1}


@pytest.mark.parametrize(
    "rows,message",
    [
        (["u1\tg1\tgames"], r"interactions.tsv:2: expected 4 tab-separated fields"),
        (["u1\tg1\tgames\t1", "u1\tg2\tgames\tsoon"], r"interactions.tsv:3: timestamp"),
        (["\tg1\tgames\t1"], r"interactions.tsv:2: empty"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        data.load_interactions(_write(tmp_path, rows), "games")


def test_bad_header_and_missing_domain(tmp_path):
    with pytest.raises(ValueError, match=r"interactions.tsv:1: expected the header"):
        data.load_interactions(_write(tmp_path, ROWS, header="a\tb\tc\td"), "games")
    with pytest.raises(ValueError, match="no rows of target domain 'movies'"):
        data.load_interactions(_write(tmp_path, ROWS), "movies")


def test_leave_last_out_by_hand():
    seqs = data.Sequences(
        name="hand",
        # Ids >= 6 are source items: never targets, kept in histories.
        sequences=[np.array([1, 7, 2, 3, 8, 4]), np.array([5, 1]), np.array([2, 3, 4])],
        num_items=9,
        num_candidates=6,
    )
    train, eval_split, test, counts = data.leave_last_out(seqs, max_len=3)
    assert counts["users"] == 2 and counts["users_too_short"] == 1
    # User 1: targets at positions 0, 2, 3, 5 -> test 4, eval 3, train 2 (1 has no history).
    # User 3: test 4, eval 3, train none (its first click has no history).
    np.testing.assert_array_equal(test.targets, [4, 4])
    np.testing.assert_array_equal(test.histories, [[2, 3, 8], [2, 3, 0]])
    np.testing.assert_array_equal(eval_split.targets, [3, 3])
    np.testing.assert_array_equal(eval_split.histories, [[1, 7, 2], [2, 0, 0]])
    np.testing.assert_array_equal(train.targets, [2])
    np.testing.assert_array_equal(train.histories, [[1, 7, 0]])


def test_synthetic_runs_follow_each_users_cycle():
    seqs = data.synthetic(
        num_users=200,
        num_clusters=8,
        items_per_cluster=30,
        interests_per_user=3,
        min_length=20,
        max_length=30,
        mean_run=4.0,
        seed=3,
    )
    clusters = seqs.item_cluster
    assert seqs.num_items == 8 * 30 + 1 and clusters[0] == -1
    same, switches, in_cycle = 0, 0, 0
    for seq in seqs.sequences:
        assert 20 <= len(seq) <= 30
        assert len(set(seq.tolist())) == len(seq)  # no repeated click
        c = clusters[seq]
        assert len(set(c.tolist())) <= 3
        order = list(dict.fromkeys(c.tolist()))  # first-visit order = the cycle
        same += int(np.sum(c[1:] == c[:-1]))
        for a, b in zip(c[:-1], c[1:], strict=True):
            if a != b:
                switches += 1
                in_cycle += int(order.index(b) == (order.index(a) + 1) % len(order))
    stays = same / (same + switches)
    assert 0.65 < stays < 0.85  # geometric runs of mean 4: P(stay) = 0.75
    # After a switch the next cluster is always the cycle's successor.
    assert in_cycle == switches


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="`interests_per_user`"):
        data.synthetic(num_clusters=2, interests_per_user=3)
    with pytest.raises(ValueError, match="`mean_run`"):
        data.synthetic(mean_run=0.5)
    with pytest.raises(ValueError, match="`min_length`"):
        data.synthetic(min_length=2)
