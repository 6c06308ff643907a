"""Defaults that more than one part of the library must agree on.

`max_seq_len` is read by the converter (histories written), the Transform
(histories kept), `SITNConfig` and `SequenceEncoder` (position table): one
value, so that a run with no setting keeps the same history everywhere.
"""

DEFAULT_MAX_SEQ_LEN = 50
