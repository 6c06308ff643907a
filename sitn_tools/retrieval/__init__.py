"""Retrieval studies: TiMiRec and its baselines over seeds (`sitn-tf retrieval`)."""
