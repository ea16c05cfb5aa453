"""`tf.data` pipelines for the paper's datasets (MNIST, Google Speech Commands) and FSDD."""
