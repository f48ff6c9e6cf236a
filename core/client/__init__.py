"""The Python API over HTTP: with FORGEML_URL (and FORGEML_TOKEN) set, services talk to `forgeml server`.

``forgeml.start_run``, ``log_metrics``, ``log_input``, ``search_runs``, ``get_metric_history``,
``list_artifacts``, ``download_artifacts``, ``register_model``, ``promote``, ``rollback``,
``submit``, ``get_job``, ``cancel``, ``get_online_features`` and ``push`` check :func:`remote` when no
workspace is given, and send the call to the server instead of opening the files. This package is
the transport only; each layer turns the answers into its own types in its ``remote`` module
(``forgeml.tracking.remote``, ``forgeml.registry.remote``, ``forgeml.jobs.remote``, ``forgeml.features.remote``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

URL_ENV = "FORGEML_URL"
TOKEN_ENV = "FORGEML_TOKEN"
CA_ENV = "FORGEML_CA_BUNDLE"

_clients: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


def remote() -> Any:
    """Return the Client for FORGEML_URL, or None when the Python API works on local files."""
    url = os.environ.get(URL_ENV)
    if not url:
        return None
    key = (url, os.environ.get(TOKEN_ENV, ""), os.environ.get(CA_ENV, ""))
    client = _clients.get(key)
    if client is None:
        from forgeml.client.http import Client

        with _lock:
            client = _clients.setdefault(key, Client(*key))
    return client
