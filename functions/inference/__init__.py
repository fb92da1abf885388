"""The inference function: Open Inference Protocol v2 and KServe v1 over API Gateway, for any ONNX model."""
