"""Model Serving Load Lab: the model API (credit risk and house price), instrumented for Prometheus."""

__version__ = "0.1.0"
