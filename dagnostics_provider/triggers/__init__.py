"""Triggers that run in Airflow's triggerer, where Airflow's own providers keep theirs."""
