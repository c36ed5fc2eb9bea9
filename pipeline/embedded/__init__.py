"""The embedded stack: a real Kafka-protocol broker (Tansu) started by costflow."""

from __future__ import annotations
