"""pipespec's spec layer: load, check and compile pipeline specs. Never imports Airflow."""

__version__ = "0.1.0"
