"""Keys as `tollway keys create` issues them: signed under the emulator's deployment secret."""

from __future__ import annotations

import os
from collections.abc import Mapping

from tollway.auth.secret import load_key_mac


def new_key(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """A fresh key and its id, signed with the secret `provision` made (TOLLWAY_KEY_SECRET_ID)."""
    environ = os.environ if environ is None else environ
    return load_key_mac(environ["TOLLWAY_KEY_SECRET_ID"], {**os.environ, **environ}).new_key()
