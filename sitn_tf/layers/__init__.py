"""SITN Keras layers, one public class per module."""

from sitn_tf.layers.candidate_statistics import CandidateStatistics
from sitn_tf.layers.interest_clusters import InterestClusters
from sitn_tf.layers.masked_mean_pooling import MaskedMeanPooling
from sitn_tf.layers.mlp import MLP
from sitn_tf.layers.sequence_encoder import SequenceEncoder
from sitn_tf.layers.target_attention import TargetAttention

__all__ = [
    "CandidateStatistics",
    "InterestClusters",
    "MLP",
    "MaskedMeanPooling",
    "SequenceEncoder",
    "TargetAttention",
]
