"""aiinfra-airflow: the project's DVC pipeline as an Airflow DAG, and a trigger for the monitor."""

__version__ = "0.1.0"
