"""Pairwise mutual information between item feature columns as a Beam transform.

The same matrix as `mutual_information.mutual_information`, for an item
table too large for one machine's memory: the counts of every value and of
every pair of values are summed by key across workers, and only the
entropies (one number per column and per pair) meet on one worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import apache_beam as beam

from sitn_tf.retrieval import mutual_information as mi


def _cells(item: dict, names: Sequence[str]):
    """`((i, j, key_i, key_j), 1)` for every pair `i <= j` of the item's features."""
    keys = [mi.cell_key(item[name]) for name in names]
    for i in range(len(names)):
        for j in range(i, len(names)):
            yield (i, j, keys[i], keys[j]), 1


def _pair_entropy(pair_counts):
    (i, j), counts = pair_counts
    return (i, j), mi.entropy(list(counts))


def _matrix(entropies, size: int, normalized: bool) -> list[list[float]]:
    entropies = dict(entropies)
    marginal = [entropies.get((i, i), 0.0) for i in range(size)]
    joint = {(i, j): entropies.get((i, j), 0.0) for i in range(size) for j in range(i + 1, size)}
    return mi.matrix_from_entropies(marginal, joint, normalized).tolist()


class PairwiseMutualInformation(beam.PTransform):
    """Items (dicts `feature name -> value`) to one `(F, F)` matrix, as nested lists.

    Multi-valued values (lists) count as their sorted set (`mutual_information.cell_key`).

    Args:
        names: the feature columns, in matrix order; every item must have them.
        normalized: as in `mutual_information.mutual_information`.
    """

    def __init__(self, names: Sequence[str], normalized: bool = False):
        super().__init__()
        names = list(names)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"`names` must be distinct feature names, got {names!r}.")
        self.names = names
        self.normalized = bool(normalized)

    def expand(self, items):
        size = len(self.names)
        return (
            items
            | "Cells" >> beam.FlatMap(_cells, self.names)
            | "CountValues" >> beam.CombinePerKey(sum)
            | "ByPair" >> beam.Map(lambda kv: ((kv[0][0], kv[0][1]), kv[1]))
            | "GroupPairs" >> beam.GroupByKey()
            | "Entropy" >> beam.Map(_pair_entropy)
            | "AllPairs" >> beam.combiners.ToList()
            | "Matrix" >> beam.Map(_matrix, size, self.normalized)
        )
