"""Tests of `make new-location`: deploy/scripts/new_location.py is importable as ``new_location``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy" / "scripts"))
