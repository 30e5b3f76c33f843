"""`tensorflow.examples` of TF1: only `tutorials.mnist.input_data`."""
