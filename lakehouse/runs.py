"""Run identity shared by every layer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def new_run_id(pipeline: str) -> str:
    """A sortable, unique run id: ``<pipeline>-<UTC time>-<random>``."""
    return f"{pipeline}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
