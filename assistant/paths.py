"""Where the project's own files are: the checkout's root, its corpus/ and its policy.toml."""

from __future__ import annotations

from pathlib import Path

# The checkout this package runs from (an editable install, as `make run` sets up): the
# project's own data files (corpus/) and default data folders (.data/) resolve from here,
# never from the working directory, so every command works from any directory.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIR = PROJECT_ROOT / "corpus"
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "policy.toml"
