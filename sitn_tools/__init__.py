"""Tooling around the SITN library and pipeline: benchmarks (`bench`),
experiments (`experiment`), research studies (`studies`) and the `sitn-tf`
command (`cli`). It may import `sitn_tf` and `pipelines`; neither imports it.
"""
