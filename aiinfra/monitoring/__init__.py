"""Monitoring: drift of production data against the training reference, alerts, retraining."""
