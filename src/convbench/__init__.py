"""convbench: what did I lose when I converted my deep-learning model?

Converts a trained model (PyTorch, Keras) to an exchange format (ONNX, Core ML), runs the
original and the converted model side by side on the same inputs, and measures what changed.
Heavy frameworks are imported lazily by the modules that need them.
"""

import logging
import os

__version__ = "0.1.0"

# Keras runs on TensorFlow here; TensorFlow's C++ start-up chatter is not the user's business.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# coremltools warns at import about its native runtime (absent off macOS) and about untested
# versions of torch, TensorFlow and scikit-learn; convbench records the versions it ran with.
logging.getLogger("coremltools").setLevel(logging.ERROR)
