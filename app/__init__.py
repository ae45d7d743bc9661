"""Senior Python Interviewer: an offline-first practice interviewer.

Importing the package pins the environment switches that keep third-party libraries
off the network. They must be set before litellm, onnxruntime or chromadb load, and
the package is always imported first (console script, ``python -m app``, Streamlit page,
tests), so this is the one place they live.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

OFFLINE_ENVIRONMENT: dict[str, str] = {
    # litellm otherwise downloads a model price list at import time.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # onnxruntime otherwise resolves a telemetry host after the first model load.
    "ORT_DISABLE_TELEMETRY": "1",
    # Chroma's product telemetry (posthog).
    "ANONYMIZED_TELEMETRY": "False",
    # Never let huggingface_hub (pulled in by faster-whisper/tokenizers) reach a hub.
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    # tokenizers forks warn and deadlock-guard under multiprocessing; we batch ourselves.
    "TOKENIZERS_PARALLELISM": "false",
}

# Assigned, not defaulted: the product never needs these services, so a stray value in
# the user's shell must not switch them back on.
os.environ.update(OFFLINE_ENVIRONMENT)
