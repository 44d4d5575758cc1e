"""Circuit breaker, retries, timeouts, bulkheads and fallbacks in front of flaky downstreams."""

from .engine import CircuitBreakerEngine

__all__ = ["CircuitBreakerEngine"]
