"""The demo-song synthesiser's earlier home, kept so that ``python -m mixpilot.realtime.demo OUT.wav``
and ``from mixpilot.realtime.demo import synth_demo`` still work: it lives in :mod:`mixpilot.demo`."""

from __future__ import annotations

import sys

from mixpilot.demo import DEMO_PEAK_MAX, DEMO_RMS_DBFS, main, synth_demo, write_demo

__all__ = ["DEMO_RMS_DBFS", "DEMO_PEAK_MAX", "synth_demo", "write_demo", "main"]

if __name__ == "__main__":
    sys.exit(main())
