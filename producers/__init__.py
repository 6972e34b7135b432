"""Producers: turn outside input (webhooks, Kubernetes, logs, captures) into topic messages."""
