"""mnistcnn: train, evaluate, explain and serve CNNs for MNIST-style 28x28 grayscale images."""

__version__ = "0.1.0"
