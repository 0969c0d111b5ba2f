"""mixpilot benchmarks."""
