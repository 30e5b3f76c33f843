"""`tensorflow.examples.tutorials` of TF1: only `mnist.input_data`."""
