from __future__ import annotations

from sitn_tools.studies import cluster_remedies


def _record(remedy, health):
    return {
        "remedy": remedy,
        "eval_losses": {"loss": 11.0, "loss_i2i": 10.25, "loss_i2c": 0.75},
        "cluster_health": {
            "instance_cosine": {"source": 0.9, "target": 0.5},
            "granularities": health,
        },
    }


def test_table_has_one_row_per_remedy_with_the_health_numbers():
    entry = {
        "source_dead_clusters": 30.0,
        "target_dead_clusters": 2.0,
        "source_effective_clusters": 1.04,
        "target_effective_clusters": 20.5,
        "cross_cosine_margin": -0.0123,
        "logit_gap": 6.65,
    }
    text = cluster_remedies.table([_record("paper", {"32": entry}), _record("i2i_only", {})])
    lines = text.splitlines()
    assert len(lines) == 4
    paper = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert paper[:8] == [
        "paper",
        "10.250",
        "0.750",
        "0.900 / 0.500",
        "30 / 2",
        "1.0 / 20.5",
        "-0.012",
        "+6.65",
    ]
    # A remedy without clusters shows dashes, not zeros.
    assert lines[3].count("- / -") == 2 * len(cluster_remedies.TABLE_KS)


def test_every_remedy_is_a_valid_model_config():
    from sitn_tf.models import SITNConfig

    assert cluster_remedies.REMEDIES["paper"] == {}
    for overrides in cluster_remedies.REMEDIES.values():
        SITNConfig(**overrides)  # raises on a bad field
