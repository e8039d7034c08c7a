"""``ingest --rebuild`` without an empty library: build aside, then switch over.

The new index is built into ``f"{name}__rebuild"`` while the configured
collection ``name`` keeps serving, untouched. Only a complete build is
switched in (``switch_over``):

1. the serving collection is renamed ``f"{name}__previous"`` (handles already
   open keep working: Chroma addresses collections by id);
2. the new collection takes the name ``name``;
3. the previous collection is dropped.

A rebuild killed while building leaves the serving collection as it was plus
a half-built ``__rebuild`` collection, which the next rebuild drops before it
starts (``start_rebuild``). A run killed between steps 1 and 2 (milliseconds)
leaves no collection named ``name``; ``finish_interrupted_switch``, called at
the start of every ingest, completes the switch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from assistant.config import Settings
from assistant.store import delete_collection, rename_collection

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

logger = logging.getLogger(__name__)

REBUILD_SUFFIX = "__rebuild"
PREVIOUS_SUFFIX = "__previous"


def _named(settings: Settings, name: str) -> Settings:
    chroma = settings.chroma.model_copy(update={"collection": name})
    return settings.model_copy(update={"chroma": chroma})


def _names(client: ClientAPI) -> set[str]:
    return {c if isinstance(c, str) else c.name for c in client.list_collections()}


def _drop(client: ClientAPI, settings: Settings, name: str) -> None:
    delete_collection(client, _named(settings, name))


def start_rebuild(client: ClientAPI, settings: Settings) -> Settings:
    """Settings whose collection is a new, empty build collection (a leftover one is dropped first)."""
    name = settings.chroma.collection + REBUILD_SUFFIX
    if name in _names(client):
        logger.warning("删除上次未完成的重建：%s", name)
        _drop(client, settings, name)
    return _named(settings, name)


def discard_rebuild(client: ClientAPI, settings: Settings) -> None:
    """Drop the build collection of a rebuild that is not switched in."""
    _drop(client, settings, settings.chroma.collection + REBUILD_SUFFIX)


def switch_over(client: ClientAPI, settings: Settings) -> None:
    """Put the complete build collection in place of the serving one, then drop the old one."""
    name = settings.chroma.collection
    previous = name + PREVIOUS_SUFFIX
    if previous in _names(client):  # from a switch interrupted after its last rename
        _drop(client, settings, previous)
    rename_collection(client, name, previous)  # False on a first build: nothing served yet
    if not rename_collection(client, name + REBUILD_SUFFIX, name):
        raise RuntimeError(f"rebuild collection {name + REBUILD_SUFFIX} vanished before the switch")
    _drop(client, settings, previous)
    logger.info("重建完成，已切换到新索引：%s", name)


def finish_interrupted_switch(client: ClientAPI, settings: Settings) -> None:
    """Complete a switch-over that was killed between its steps (no-op otherwise)."""
    name = settings.chroma.collection
    previous, build = name + PREVIOUS_SUFFIX, name + REBUILD_SUFFIX
    names = _names(client)
    if previous not in names:
        return
    if name in names and build in names:
        # Killed between the renames, and something (a server starting) created an empty `name` since.
        serving = client.get_collection(name, embedding_function=None)
        if serving.count() > 0:
            _drop(client, settings, previous)  # that new collection is in use now: keep it
            return
        _drop(client, settings, name)
        names.discard(name)
    if name not in names:
        # Killed between the renames: the build was complete (renaming starts only then).
        source = build if build in names else previous
        rename_collection(client, source, name)
        logger.warning("上次重建在切换时中断，已完成切换：%s -> %s", source, name)
    if previous in _names(client):
        _drop(client, settings, previous)
