"""The saga pattern: an order across four services, with compensations (orchestrated or choreographed)."""

from .engine import SagaEngine

__all__ = ["SagaEngine"]
