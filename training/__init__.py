"""mixpilot training pipeline (arrives with the AI issue)."""
