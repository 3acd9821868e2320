"""One writer per file format: the TensorFlow function, the SavedModel (and its decoder step and
warm-up records), ONNX, the cached decoder ONNX, and the onnxruntime-only rewrites. Nothing is
imported here."""
