"""mixpilot inference: features, ONNX session, worker, heuristic (arrives with the AI issue)."""
