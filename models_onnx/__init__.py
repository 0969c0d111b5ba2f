"""Shipped ONNX models and their cards."""
