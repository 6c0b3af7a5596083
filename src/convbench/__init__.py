"""convbench: what did I lose when I converted my deep-learning model?

Converts a trained model (PyTorch, Keras) to an exchange format (ONNX, Core ML), runs the
original and the converted model side by side on the same inputs, and measures what changed.
Heavy frameworks are imported lazily by the modules that need them.
"""

import os

__version__ = "0.1.0"

# Keras runs on TensorFlow here; TensorFlow's C++ start-up chatter is not the user's business.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
