"""Next-item sequences for retrieval: a planted synthetic set, the real loaders, the split.

Item ids are ints: 0 is padding, `1..num_candidates-1` are the target-domain
items (the retrievable corpus) and, in a cross-domain history,
`num_candidates..num_items-1` are the source-domain items (they appear in
histories, never as targets).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from sitn_tf.checks import check_int

COLUMNS = ("user_id", "item_id", "domain", "timestamp")


@dataclasses.dataclass
class Sequences:
    """Every user's clicks in order, as item ids (see the module docstring)."""

    name: str
    sequences: list[np.ndarray]
    num_items: int
    num_candidates: int
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    # For the synthetic set: each candidate's planted cluster (index = id).
    item_cluster: np.ndarray | None = None
    # For a loaded set: the target-domain item id string of each candidate id.
    item_ids: dict[str, int] | None = None


@dataclasses.dataclass
class Split:
    """Next-item instances: `histories` `(N, max_len)` right-padded, `targets` `(N,)`."""

    histories: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def synthetic(
    num_users: int = 2000,
    num_clusters: int = 20,
    items_per_cluster: int = 50,
    interests_per_user: int = 3,
    min_length: int = 20,
    max_length: int = 40,
    mean_run: float = 4.0,
    zipf: float = 1.0,
    seed: int = 0,
) -> Sequences:
    """Users who hold several interests and switch among them in runs.

    Items fall into `num_clusters` clusters (interests) of
    `items_per_cluster` items; within a cluster, item `r` (0-based popularity
    rank) is drawn with weight `1 / (r + 1) ** zipf`. Each user holds
    `interests_per_user` distinct clusters in a fixed random cyclic order.
    The sequence is a series of runs: a run stays in one cluster for a
    geometric number of clicks (mean `mean_run`), then the context switches
    to the *next* cluster of the user's cycle. The target's interest is thus
    predictable from recent history: it is the current run's cluster, or,
    after a switch, its successor in the cycle, which the history shows. A
    user never clicks the same item twice (while the cluster has unclicked
    items).

    Returns:
        `Sequences` with `item_cluster` set; ids `1..num_clusters *
        items_per_cluster`, cluster `c` owning ids `c * items_per_cluster +
        1 ..`.
    """
    check_int("num_users", num_users, minimum=1)
    check_int("num_clusters", num_clusters, minimum=1)
    check_int("items_per_cluster", items_per_cluster, minimum=1)
    check_int("interests_per_user", interests_per_user, minimum=1)
    check_int("min_length", min_length, minimum=3)
    check_int("max_length", max_length, minimum=min_length)
    if interests_per_user > num_clusters:
        raise ValueError(
            f"`interests_per_user` must be <= num_clusters, got {interests_per_user} > "
            f"{num_clusters}."
        )
    if not mean_run >= 1.0:
        raise ValueError(f"`mean_run` must be >= 1, got {mean_run!r}.")
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, items_per_cluster + 1) ** zipf
    # A random item order inside each cluster, so ids carry no popularity.
    orders = [rng.permutation(items_per_cluster) for _ in range(num_clusters)]
    sequences = []
    for _ in range(num_users):
        cycle = rng.choice(num_clusters, size=interests_per_user, replace=False)
        length = int(rng.integers(min_length, max_length + 1))
        position = int(rng.integers(interests_per_user))
        # Per cluster, the popularity ranks this user has not clicked yet.
        unclicked = {int(c): np.ones(items_per_cluster, dtype=bool) for c in cycle}
        seq: list[int] = []
        while len(seq) < length:
            cluster = int(cycle[position])
            run = int(rng.geometric(1.0 / mean_run))
            for _ in range(min(run, length - len(seq))):
                free = unclicked[cluster]
                w = weights * free if free.any() else weights
                rank = int(rng.choice(items_per_cluster, p=w / w.sum()))
                free[rank] = False
                seq.append(cluster * items_per_cluster + int(orders[cluster][rank]) + 1)
            position = (position + 1) % interests_per_user
        sequences.append(np.asarray(seq, dtype=np.int64))
    num_items = num_clusters * items_per_cluster + 1
    item_cluster = np.concatenate([[-1], np.repeat(np.arange(num_clusters), items_per_cluster)])
    return Sequences(
        name="synthetic",
        sequences=sequences,
        num_items=num_items,
        num_candidates=num_items,
        item_cluster=item_cluster,
    )


def load_interactions(
    path: str | Path,
    target_domain: str,
    source_domain: str | None = None,
) -> Sequences:
    """Per-user click sequences from an interactions TSV.

    The file has a header with the columns `user_id, item_id, domain,
    timestamp` (tab-separated). A user's clicks are ordered by `timestamp`,
    ties by their order in the file. `timestamp` is only compared within one
    user (in the Toys->Games set it is a per-user position).

    Args:
        path: the TSV file.
        target_domain: the domain whose items are retrieved (e.g. `games`,
            `movies`).
        source_domain: when given, its clicks stay in the histories
            (cross-domain variant) with ids after the target items; when None,
            only the target domain's clicks are kept.

    Returns:
        `Sequences`; `skipped` counts the rows left out, per domain, as
        `domain_<name>` (rows of a domain that is neither the target nor the
        given source; without a source, every non-target row).

    Raises:
        ValueError: naming the file and line, for a bad header, a row without
            four fields, an empty id or a non-integer timestamp.
    """
    path = Path(path)
    rows: dict[str, list[tuple[int, int, str, str]]] = {}
    skipped: Counter = Counter()
    domains_seen: Counter = Counter()
    with path.open(encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if tuple(header) != COLUMNS:
            raise ValueError(f"{path}:1: expected the header columns {COLUMNS}, got {header!r}.")
        for line_number, line in enumerate(handle, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 4:
                raise ValueError(
                    f"{path}:{line_number}: expected 4 tab-separated fields, got {len(fields)}."
                )
            user, item, domain, stamp = fields
            if not user or not item or not domain:
                raise ValueError(f"{path}:{line_number}: empty user_id, item_id or domain.")
            try:
                time = int(stamp)
            except ValueError:
                raise ValueError(
                    f"{path}:{line_number}: timestamp must be an integer, got {stamp!r}."
                ) from None
            domains_seen[domain] += 1
            if domain != target_domain and domain != source_domain:
                skipped[f"domain_{domain}"] += 1
                continue
            rows.setdefault(user, []).append((time, line_number, domain, item))
    if not domains_seen[target_domain]:
        raise ValueError(
            f"{path}: no rows of target domain {target_domain!r}; domains: {sorted(domains_seen)}."
        )
    if source_domain is not None and not domains_seen[source_domain]:
        raise ValueError(
            f"{path}: no rows of source domain {source_domain!r}; domains: {sorted(domains_seen)}."
        )
    target_ids: dict[str, int] = {}
    for user_rows in rows.values():
        for _, _, domain, item in user_rows:
            if domain == target_domain and item not in target_ids:
                target_ids[item] = len(target_ids) + 1
    num_candidates = len(target_ids) + 1
    source_ids: dict[str, int] = {}
    for user_rows in rows.values():
        for _, _, domain, item in user_rows:
            if domain != target_domain and item not in source_ids:
                source_ids[item] = num_candidates + len(source_ids)
    sequences = []
    for user in rows:
        ordered = sorted(rows[user])
        sequences.append(
            np.asarray(
                [
                    target_ids[item] if domain == target_domain else source_ids[item]
                    for _, _, domain, item in ordered
                ],
                dtype=np.int64,
            )
        )
    name = path.parent.name + ("_cross" if source_domain else "")
    return Sequences(
        name=name,
        sequences=sequences,
        num_items=num_candidates + len(source_ids),
        num_candidates=num_candidates,
        skipped=dict(skipped),
        item_ids=target_ids,
    )


def leave_last_out(data: Sequences, max_len: int) -> tuple[Split, Split, Split, dict[str, int]]:
    """Per user: last target-domain click = test, second-to-last = eval, earlier ones = train.

    Each instance's history is the (at most `max_len`) clicks right before
    its target, of either domain, oldest first and right-padded with 0. A
    train instance needs at least one click before it, so a user's first
    click is never a train target. Users with fewer than 3 target-domain
    clicks cannot be split and are counted, not used.

    Returns:
        `(train, eval, test, counts)`; `counts` has `users`, `users_too_short`
        and the instance counts.
    """
    check_int("max_len", max_len, minimum=1)
    parts: dict[str, tuple[list[np.ndarray], list[int]]] = {
        "train": ([], []),
        "eval": ([], []),
        "test": ([], []),
    }
    too_short = 0

    def add(part: str, seq: np.ndarray, position: int) -> None:
        history = seq[max(0, position - max_len) : position]
        row = np.zeros(max_len, dtype=np.int32)
        row[: len(history)] = history
        parts[part][0].append(row)
        parts[part][1].append(int(seq[position]))

    for seq in data.sequences:
        positions = np.flatnonzero(seq < data.num_candidates)
        if len(positions) < 3:
            too_short += 1
            continue
        add("test", seq, int(positions[-1]))
        add("eval", seq, int(positions[-2]))
        for position in positions[:-2]:
            if position > 0:
                add("train", seq, int(position))
    splits = []
    for part in ("train", "eval", "test"):
        rows, targets = parts[part]
        splits.append(
            Split(
                histories=np.stack(rows) if rows else np.zeros((0, max_len), np.int32),
                targets=np.asarray(targets, dtype=np.int32),
            )
        )
    counts = {
        "users": len(parts["test"][1]),
        "users_too_short": too_short,
        "train_instances": len(splits[0]),
        "eval_instances": len(splits[1]),
        "test_instances": len(splits[2]),
    }
    return splits[0], splits[1], splits[2], counts
