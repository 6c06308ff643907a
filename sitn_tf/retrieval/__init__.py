"""Candidate retrieval over the full target-domain corpus.

TiMiRec (Wang et al. CIKM 2022) and its baselines, two-tower retrieval with
self-supervised item towers (Yao et al. CIKM 2021), the full-corpus metrics
every retriever is evaluated with, and the `retrieve` export contract.
"""

from sitn_tf.retrieval.export import RetrieveModule, export_retriever
from sitn_tf.retrieval.feature_dropout import FeatureDropout
from sitn_tf.retrieval.feature_masking import FeatureMasking
from sitn_tf.retrieval.gru4rec import GRU4Rec
from sitn_tf.retrieval.multi_interest_extractor import MultiInterestExtractor
from sitn_tf.retrieval.target_interest_predictor import TargetInterestPredictor
from sitn_tf.retrieval.timirec import TiMiRec
from sitn_tf.retrieval.two_tower import TwoTowerRetriever

__all__ = [
    "FeatureDropout",
    "FeatureMasking",
    "GRU4Rec",
    "MultiInterestExtractor",
    "RetrieveModule",
    "TargetInterestPredictor",
    "TiMiRec",
    "TwoTowerRetriever",
    "export_retriever",
]
