# ruff: noqa: B007, N806, N816, UP031, UP032 - kept as the TF1 tutorial wrote it
"""Softmax regression on MNIST: TensorFlow 1's "MNIST For ML Beginners" tutorial (TF 0.x-1.x),
with its hand-written cross-entropy -reduce_sum(y_ * log(y)). TF reports about 92% test
accuracy after 1000 steps of 100 examples.

Only the imports differ from the TF1 script. SYMGRAPH_COMPAT_STEPS caps the steps (CI).
"""

import os

import symgraph.compat.v1 as tf
from symgraph.compat.v1.examples.tutorials.mnist import input_data

STEPS = int(os.environ.get("SYMGRAPH_COMPAT_STEPS", 1000))

mnist = input_data.read_data_sets("MNIST_data/", one_hot=True)

x = tf.placeholder(tf.float32, [None, 784])
W = tf.Variable(tf.zeros([784, 10]))
b = tf.Variable(tf.zeros([10]))
y = tf.nn.softmax(tf.matmul(x, W) + b)

y_ = tf.placeholder("float", [None, 10])
cross_entropy = tf.reduce_mean(-tf.reduce_sum(y_ * tf.log(y), reduction_indices=[1]))
train_step = tf.train.GradientDescentOptimizer(0.5).minimize(cross_entropy)

init = tf.initialize_all_variables()
sess = tf.Session()
sess.run(init)

for i in range(STEPS):
    batch_xs, batch_ys = mnist.train.next_batch(100)
    sess.run(train_step, feed_dict={x: batch_xs, y_: batch_ys})

correct_prediction = tf.equal(tf.argmax(y, 1), tf.argmax(y_, 1))
accuracy = tf.reduce_mean(tf.cast(correct_prediction, "float"))
print("accuracy", sess.run(accuracy, feed_dict={x: mnist.test.images, y_: mnist.test.labels}))
