"""The load balancer pattern: algorithms, health checks and an active-passive pair of balancers."""

from .engine import LoadBalancerEngine

__all__ = ["LoadBalancerEngine"]
