"""Model runtimes: scikit-learn, torch, ONNX Runtime and plain Python functions."""
