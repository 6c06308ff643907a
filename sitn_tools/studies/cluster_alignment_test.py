from __future__ import annotations

from sitn_tools.studies import cluster_alignment


def _entry(scale):
    return {
        "cross_cosine": 0.36 * scale,
        "random_cross_cosine": 0.36,
        "centroid_cross_cosine": 0.6 * scale,
        "random_centroid_cross_cosine": 0.35,
        "target_agreement": 0.3 * scale,
        "target_agreement_chance": 0.05,
        "source_agreement": 0.2 * scale,
        "source_agreement_chance": 0.04,
        "source_instance_to_cluster_cosine": 0.2,
        "target_instance_to_cluster_cosine": 0.4,
    }


def test_table_has_one_row_per_variant_and_k_with_mean_and_sd_over_seeds():
    records = [
        {"variant": "sitn", "seed": 1, "granularities": {"32": _entry(1.0), "64": _entry(1.0)}},
        {"variant": "sitn", "seed": 2, "granularities": {"32": _entry(0.5), "64": _entry(1.0)}},
        {"variant": "no_i2i", "seed": 1, "granularities": {"32": _entry(1.0)}},
    ]
    for record in records[:2]:
        record["at_init"] = {"32": _entry(0.1)}
    lines = cluster_alignment.table(records).splitlines()
    # sitn K = 32, 64; sitn at initialisation K = 32; no_i2i K = 32 (no init numbers).
    assert len(lines) == 2 + 4
    init = [cell.strip() for cell in lines[4].strip("|").split("|")]
    assert init[:4] == ["sitn at initialisation", "32", "2", "0.036 ± 0.000 vs 0.360"]
    row = [cell.strip() for cell in lines[2].strip("|").split("|")]
    # Seeds 1 and 2 at K = 32: target agreement 0.3 and 0.15 -> mean 0.225, sd 0.106.
    assert row[:3] == ["sitn", "32", "2"]
    assert row[5] == "0.225 ± 0.106 vs 0.050"
    assert row[4] == "0.450 ± 0.212 vs 0.350"
    assert row[-1] == "0.300 ± 0.000"
    single = [cell.strip() for cell in lines[5].strip("|").split("|")]
    assert single[:4] == ["no_i2i", "32", "1", "0.360 vs 0.360"]
