"""Defaults that more than one part of the library must agree on.

`max_seq_len` is read by the converter (histories written), the Transform
(histories kept), `SITNConfig` and `SequenceEncoder` (position table): one
value, so that a run with no setting keeps the same history everywhere.
"""

DEFAULT_MAX_SEQ_LEN = 50

# Bucket ids of the candidate statistics (`sitn_tf.preprocessing.log2_bucket`):
# the Transform writes them and the models' embedding tables must hold them.
# 0 unknown, 1 zero, then one bucket per power of two: clicks up to 2**21
# (about two million; more share the last bucket), ages up to 2**37 seconds.
CLICK_COUNT_BUCKETS = 24
AGE_BUCKETS = 40
