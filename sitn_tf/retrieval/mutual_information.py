"""Pairwise mutual information between item feature columns, and the
correlated feature groups of CFM (Yao et al. CIKM 2021).

Computed offline over the item table (each item counted once): here with
numpy, and for a corpus that does not fit in memory with the Beam transform
of `mutual_information_beam`, which gives the same matrix from the same
entropies (`entropy`, `matrix_from_entropies`). The matrix and the groups
travel with the model as config values (`TwoTowerRetriever`'s
`mutual_information` and `feature_groups`), so a reloaded model masks the
same groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def cell_key(value):
    """The value a cell counts as: a multi-valued cell (list/tuple/set) is its sorted set.

    Two items share a multi-valued value only when they have the same set.
    """
    return tuple(sorted(set(value))) if isinstance(value, (list, tuple, set)) else value


def _codes(column: Sequence) -> np.ndarray:
    """Dense integer codes of a column's values (`cell_key`)."""
    index: dict = {}
    return np.asarray([index.setdefault(cell_key(v), len(index)) for v in column], np.int64)


def entropy(counts) -> float:
    """`H = -sum p log p` (nats) of a distribution given by its counts."""
    counts = np.asarray(counts, dtype=np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def matrix_from_entropies(
    marginal: Sequence[float], joint: dict[tuple[int, int], float], normalized: bool = False
) -> np.ndarray:
    """`I(A; B) = H(A) + H(B) - H(A, B)` for every pair, from the entropies.

    Args:
        marginal: `H` of each of the `F` columns.
        joint: `(i, j) -> H(column i, column j)` for `i < j`.
        normalized: divide by `sqrt(H(A) H(B))` (see `mutual_information`).

    Returns:
        `(F, F)` symmetric; the diagonal is `H(A)`, or 1 (0 when `H(A) = 0`)
        when normalised.
    """
    size = len(marginal)
    matrix = np.diag(np.asarray(marginal, dtype=np.float64))
    for i in range(size):
        for j in range(i + 1, size):
            matrix[i, j] = matrix[j, i] = max(marginal[i] + marginal[j] - joint[(i, j)], 0.0)
    if normalized:
        scale = np.sqrt(np.outer(marginal, marginal))
        matrix = np.divide(matrix, scale, out=np.zeros_like(matrix), where=scale > 0)
    return matrix


def mutual_information(
    columns: Mapping[str, Sequence], normalized: bool = False
) -> tuple[list[str], np.ndarray]:
    """`I(A; B) = sum_ab p(a, b) log(p(a, b) / (p(a) p(b)))` for every pair of columns (nats).

    Args:
        columns: feature name -> one value per item (all the same length).
        normalized: divide by `sqrt(H(A) H(B))` (0 when either entropy is 0).
            Raw MI of a unique column (the item id) with any column `B` is
            `H(B)`, the largest MI `B` can have, so with raw MI every feature's
            most correlated partner is the id; the normalised MI ranks the
            id low against a column it does not determine.

    Returns:
        `(names, matrix)`: `matrix[i, j]` for `names[i], names[j]`, `(F, F)`,
        symmetric; the diagonal is `H(A)` (raw) or 1 (normalised, where `H > 0`).

    Raises:
        ValueError: no columns, or columns of different lengths, naming them.
    """
    names = list(columns)
    if not names:
        raise ValueError("`columns` must name at least one feature column.")
    lengths = {name: len(columns[name]) for name in names}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"`columns` must all have one value per item, got lengths {lengths}.")
    codes = [_codes(columns[name]) for name in names]
    marginal = [entropy(np.bincount(c)) for c in codes]
    joint = {}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            counts = np.zeros((codes[i].max() + 1, codes[j].max() + 1))
            np.add.at(counts, (codes[i], codes[j]), 1.0)
            joint[(i, j)] = entropy(counts.ravel())
    return names, matrix_from_entropies(marginal, joint, normalized)


def correlated_groups(matrix: np.ndarray, group_size: int | None = None) -> np.ndarray:
    """CFM's mask groups: for each seed feature, itself plus its most correlated features.

    Yao et al.: pick a seed feature, then mask the `n - 1` other
    features with the highest mutual information with it, `n = F / 2` (here
    `max(1, F // 2)`), so that about half of the features are masked; the
    other view masks the complement. Ties go to the lower column index.

    Args:
        matrix: `(F, F)` pairwise mutual information.
        group_size: `n`; defaults to `max(1, F // 2)`.

    Returns:
        `(F, F)` bool, row `f` the features masked when `f` is the seed.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"`matrix` must be square (F, F), got shape {matrix.shape}.")
    size = matrix.shape[0]
    group_size = max(1, size // 2) if group_size is None else group_size
    if not isinstance(group_size, int) or not 1 <= group_size <= size:
        raise ValueError(f"`group_size` must be an int in [1, {size}], got {group_size!r}.")
    groups = np.zeros((size, size), dtype=bool)
    for seed in range(size):
        others = [j for j in range(size) if j != seed]
        ranked = sorted(others, key=lambda j: (-matrix[seed, j], j))
        groups[seed, [seed, *ranked[: group_size - 1]]] = True
    return groups
