"""mixpilot real-time layer: engine, render, CLI."""
