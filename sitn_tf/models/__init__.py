"""SITN models: stage-1 pretrainer, stage-2 ranker and the DIN baseline.

Where each equation of Sun et al. (AAAI 2023) lives:

| Paper                                        | Code                                        |
|----------------------------------------------|---------------------------------------------|
| Eq. 1, per-domain encoders `f_s`, `f_t`      | `layers.SequenceEncoder`                    |
| Eq. 2, aggregation `g` (masked mean)         | `ops.masked_mean`, `layers.MaskedMeanPooling`|
| Eqs. 3-4, CL-I2I, `L_i2i = L^s2t + L^t2s`    | `ops.info_nce`, `SITNPretrainer.compute_ssl_losses` |
| Eq. 5, new clusters `u_k`                    | `ops.soft_cluster_update`, `layers.InterestClusters` |
| Eq. 6, multi-view top-k + MLP                | `ops.top_k_clusters`, `layers.InterestClusters` |
| Eq. 7, CL-I2C, `e_i2c = e^s2t + e^t2s`       | `ops.instance_to_cluster_nce`               |
| multi-granularity `L_i2c = sum_l e^l_i2c`    | `SITNPretrainer.compute_ssl_losses`         |
| `L_ssl = L_i2i + L_i2c` (stage 1)            | `SITNPretrainer.compute_loss`               |
| DIN target attention (stage 2)               | `layers.TargetAttention`                    |
| Eqs. 8-9, `y = MLP(u_f^s, u_f^t, v)`, BCE    | `SITNRanker.call` (+ Keras BCE)             |
| ablation switches (Tables 3-4)               | `SITNConfig`                                |
"""

from sitn_tf.models.config import SITNConfig
from sitn_tf.models.din import DIN
from sitn_tf.models.pretrainer import SITNPretrainer
from sitn_tf.models.ranker import SITNRanker

__all__ = ["DIN", "SITNConfig", "SITNPretrainer", "SITNRanker"]
