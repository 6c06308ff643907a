"""SITN models: stage-1 pretrainer, stage-2 ranker and the DIN baseline.

Which class or method implements each equation of Sun et al. (AAAI 2023) is
listed in one place, the README's table "Where each equation lives".
"""

from sitn_tf.models.config import SITNConfig
from sitn_tf.models.din import DIN
from sitn_tf.models.pretrainer import SITNPretrainer
from sitn_tf.models.ranker import SITNRanker

__all__ = ["DIN", "SITNConfig", "SITNPretrainer", "SITNRanker"]
