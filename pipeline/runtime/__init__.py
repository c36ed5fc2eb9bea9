"""Running the stages: worker, sink, embedded broker, supervisor, replay."""

from __future__ import annotations
