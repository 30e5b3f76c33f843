"""`symgraph.compat`: other frameworks' APIs mapped onto symgraph.

    import symgraph.compat.v1 as tf     # a TensorFlow 1 graph-mode script runs unchanged

`v1` is TF1's namespace (`tf.placeholder`, `tf.Session`, `tf.nn`, `tf.train`, ...); see its
docstring and the README section "TensorFlow 1 compatibility".
"""
