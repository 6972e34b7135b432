"""The webhook routes of `sentinel api` on their own (no store): what bench/producer_throughput.py
posts to. `python bench/webhook_receiver.py PORT`, configured through SENTINEL_* variables.

The same code as `sentinel api` for a webhook (`WebhookIntake`: spool, delivery ledger,
publisher; `github_router`: signature, normalisation, 202 once acknowledged), served by uvicorn
the same way; the read API and pages are left out because they need the store.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from producers.webhooks.routes import github_router
from runtime.config import load_settings
from runtime.log_setup import setup_logging
from sentinel.cli.common import serve
from sentinel.stack import WebhookIntake


def main() -> None:
    settings = load_settings(None)
    setup_logging(settings.logging.level, settings.logging.format, "bench-receiver")
    intake = WebhookIntake(settings)
    intake.start()
    assert intake.github is not None
    app = FastAPI()
    app.include_router(
        github_router(
            intake.github, settings.github_webhook_secret(), settings.webhooks.max_body_bytes
        )
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None)
    try:
        serve(uvicorn.Server(config))
    finally:
        intake.stop()


if __name__ == "__main__":
    main()
