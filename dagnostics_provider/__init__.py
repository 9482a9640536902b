"""DAGnostics: diagnose failed Airflow tasks with a small language model that learns from reviews."""

__version__ = "0.1.0"
