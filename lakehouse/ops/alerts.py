"""Alerts: a configured command and/or a JSON POST to a webhook whose URL is in the environment.

The command gets the alert as JSON on stdin and as ``LAKEHOUSE_ALERT_*`` environment
variables; the webhook URL is read from the variable named in YAML (it may carry a token, so
it is never written in YAML or logs). Alerting never raises: a broken alert is logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

from loguru import logger

TIMEOUT_SECONDS = 10


def send(alert: dict, command: str | None = None, webhook_url_env: str | None = None) -> None:
    body = json.dumps(alert, sort_keys=True, default=str)
    if command:
        env = {**os.environ}
        env.update({f"LAKEHOUSE_ALERT_{k.upper()}": str(v) for k, v in alert.items() if v})
        try:
            done = subprocess.run(
                command, shell=True, input=body, text=True, env=env, timeout=TIMEOUT_SECONDS
            )
            if done.returncode != 0:
                logger.error(f"alert command exited {done.returncode}")
        except (OSError, subprocess.SubprocessError) as error:
            logger.error(f"alert command failed: {error}")
    url = os.environ.get(webhook_url_env or "") if webhook_url_env else None
    if url:
        request = urllib.request.Request(
            url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                response.read()
        except OSError as error:  # URLError, HTTPError, timeouts; the URL itself is not logged
            logger.error(f"alert webhook (${webhook_url_env}) failed: {type(error).__name__}")
