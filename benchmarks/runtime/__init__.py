"""The process: Keras' backend, TensorFlow's quiet start, signals, the lock, private names."""
