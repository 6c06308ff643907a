"""The similarity study runs end to end at tiny settings (a smoke test: its figures are not checked)."""

from __future__ import annotations

from sitn_tools.studies import similarity_study


def test_study_prints_a_row_per_setting_and_the_scratch_reference(capsys):
    similarity_study.main(
        [
            "--seeds", "1", "--steps", "2", "--epochs", "1", "--embedding-dim", "8",
            "--similarities", "cosine", "--temperatures", "0.3",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "| scratch | - |" in out
    assert "| cosine | 0.3 |" in out
