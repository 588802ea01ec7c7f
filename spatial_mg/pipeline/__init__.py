"""The pipeline behind the CLI: demo, and the steps on real files."""

from ._demo import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
