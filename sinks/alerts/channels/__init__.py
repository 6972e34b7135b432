"""Channels: each sends one rendered message and says how it went (adapters, async).

A channel raises `DeliveryError` with ``temporary=True`` for what a retry may fix (timeouts,
connection errors, 5xx, 429 with its Retry-After) and ``temporary=False`` for what it will not (a
4xx other than 408/429, an SMTP 5xx such as a refused login): `sinks.alerts.delivery` retries the
first kind and records the second as failed.
"""
