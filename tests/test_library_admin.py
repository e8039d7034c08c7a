"""The library-folder side of the admin console, without a server: file names, content checks,
front matter and sidecars as the loaders read them back, associated questions from the TOML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_admin import RULE, docx_bytes

from assistant.associated import AssociatedError, AssociatedStore
from ingest.discovery import discover
from ingest.library_admin import LibraryFolder
from ingest.loaders import LoadError, load_file
from ingest.sidecar import sidecar_path, write_sidecar
from ingest.upload_checks import UploadRefused, check_content, safe_name, with_front_matter

ALLOWED = [".md", ".txt", ".docx", ".pdf", ".html"]


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("规定（2024年版）.md", "规定（2024年版）.md"),
        ("a<b>|c.DOCX", "a_b__c.docx"),
        ("  办法.txt ", "办法.txt"),
    ],
)
def test_file_names_are_sanitised(name: str, stored: str) -> None:
    assert safe_name(name, ALLOWED) == stored


@pytest.mark.parametrize("name", ["../x.md", "a/b.md", "..", ".env.md", "x.md.meta.json", "x.exe", ""])
def test_unsafe_file_names_are_refused(name: str) -> None:
    with pytest.raises(UploadRefused):
        safe_name(name, ALLOWED)


def test_content_must_match_the_type() -> None:
    check_content(".docx", docx_bytes(RULE))
    check_content(".html", "<html><body><p>第一条　内容。</p></body></html>".encode())
    for suffix, data in [(".pdf", b"PK\x03\x04rest"), (".docx", b"%PDF-1.4"), (".html", b"\xff\xfe\x00\x00")]:
        with pytest.raises(UploadRefused):
            check_content(suffix, data)


def test_front_matter_is_merged_and_the_body_kept(tmp_path: Path, make_settings: Any) -> None:
    original = "---\ntitle: 旧标题\nkind: 法规\n---\n\n　　第一条　为了测试，制定本办法。\n"
    data = with_front_matter(original.encode(), {"title": "新标题", "status": "已废止", "issuer": ""})
    path = tmp_path / "办法.md"
    path.write_bytes(data)
    doc = load_file(path, make_settings(tmp_path, ingest={"library_dirs": [tmp_path]}).ingest)
    assert (doc.metadata["title"], doc.metadata["status"], doc.metadata["kind"]) == (
        "新标题",
        "已废止",
        "法规",
    )
    assert doc.text == "　　第一条　为了测试，制定本办法。"


def test_sidecar_metadata_is_read_hashed_and_never_a_document(tmp_path: Path, make_settings: Any) -> None:
    settings = make_settings(tmp_path, ingest={"library_dirs": [tmp_path]}).ingest
    path = tmp_path / "办法.docx"
    path.write_bytes(docx_bytes(RULE, title="文档属性中的标题"))
    plain = load_file(path, settings)
    assert plain.metadata["title"] == "文档属性中的标题" and plain.metadata["status"] == "现行"
    write_sidecar(path, {"title": "表单标题", "status": "已废止", "superseded_by": "新办法.docx"})
    marked = load_file(path, settings)
    assert (marked.metadata["title"], marked.metadata["status"]) == ("表单标题", "已废止")
    assert marked.metadata["superseded_by"] == "新办法.docx"
    assert marked.content_hash != plain.content_hash  # so the next ingest re-indexes it
    found = discover([tmp_path], settings)
    assert found.files == [path] and found.skipped == []
    sidecar_path(path).write_text("{不是 JSON", encoding="utf-8")
    with pytest.raises(LoadError, match="元数据文件"):
        load_file(path, settings)


def test_upload_folder_must_be_in_the_library(tmp_path: Path, make_settings: Any) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    with pytest.raises(ValueError, match="upload_dir"):
        LibraryFolder(
            make_settings(tmp_path, ingest={"library_dirs": [lib], "upload_dir": tmp_path / "elsewhere"})
        )
    assert (
        LibraryFolder(
            make_settings(tmp_path, ingest={"library_dirs": [lib], "upload_dir": lib / "上传"})
        ).folder
        == lib / "上传"
    )


def test_curated_and_attached_questions(tmp_path: Path) -> None:
    curated = tmp_path / "associated_questions.toml"
    curated.write_text(
        '[[question]]\nfile = "a.md"\narticle = "第三条"\nquestion = "精选的问法"\n'
        '[[question]]\nfile = "a.md"\nquestion = "没有目标的问法被忽略"\n',
        encoding="utf-8",
    )
    store = AssociatedStore(tmp_path / "admin.sqlite3", curated)
    assert [(q.question, q.source) for q in store.all()] == [("精选的问法", "curated")]
    before = store.digest("a.md")
    added = store.add(
        file="a.md", article="第五条", heading="", question="  管理员 添加的问法 ", user="alice"
    )
    assert added.question == "管理员 添加的问法" and added.user == "alice" and added.time
    assert store.digest("a.md") != before and store.digest("b.md") == ""
    with pytest.raises(AssociatedError):
        store.add(file="a.md", article="", heading="", question="x", user="alice")
    assert store.remove(added.id) == added and store.remove(added.id) is None
    curated.write_text("[[question]\n", encoding="utf-8")
    with pytest.raises(AssociatedError, match="关联问题文件"):
        store.all()


def test_generated_questions_folder_is_read_with_the_curated_ones(tmp_path: Path) -> None:
    folder = tmp_path / "generated"
    folder.mkdir()
    (folder / "a.toml").write_text(
        '[[question]]\nfile = "a.md"\narticle = "第一条"\nquestion = "生成的问法"\n', encoding="utf-8"
    )
    (folder / "b.toml").write_text(
        '[[question]]\nfile = "b.md"\nheading = "一、总则"\nquestion = "另一份文件的问法"\n', encoding="utf-8"
    )
    (folder / "notes.txt").write_text("not a question file", encoding="utf-8")
    store = AssociatedStore(tmp_path / "admin.sqlite3", None, generated=folder, create=False)
    assert [(q.file, q.article or q.heading, q.source) for q in store.all()] == [
        ("a.md", "第一条", "generated"),
        ("b.md", "一、总则", "generated"),
    ]
    assert store.digest("a.md") and store.digest("c.md") == ""
    # A broken file is skipped and named, not fatal to the other files.
    (folder / "b.toml").write_text("[[question]\n", encoding="utf-8")
    questions, broken = store.read()
    assert [q.file for q in questions] == [q.file for q in store.all()] == ["a.md"]
    assert [(p.name, "关联问题文件" in why) for p, why in broken] == [("b.toml", True)]


def test_a_broken_generated_file_keeps_its_documents_index(
    tmp_path: Path, ingest_copies: Any, hashing: Any
) -> None:
    from ingest.indexer import run_ingest

    folder, settings = ingest_copies(["中国共产党组织处理规定_试行.md", "中国共产党问责条例_2016旧版.md"])
    generated = tmp_path / "generated"
    generated.mkdir()
    settings.ingest.generated_questions = generated
    question_file = generated / "中国共产党组织处理规定_试行.toml"
    question_file.write_text(
        '[[question]]\nfile = "中国共产党组织处理规定_试行.md"\narticle = "第十二条"\n'
        'question = "被免职了不服气，能去哪儿申诉？"\n',
        encoding="utf-8",
    )
    report = run_ingest(settings, hashing, progress=False)
    assert (report.documents_updated, report.views_embedded) == (1, 1)
    total = report.views_total
    question_file.write_text("[[question]\nfile = ", encoding="utf-8")  # a bad edit
    report = run_ingest(settings, hashing, progress=False)
    assert [where for where, _ in report.errors] == [str(question_file)]
    assert "保留原有索引" in report.errors[0][1]
    # The document keeps its stored records, question included; nothing is re-indexed.
    assert (report.documents_updated, report.documents_unchanged, report.views_total) == (0, 2, total)


def test_ingest_reads_associated_questions_without_creating_the_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "admin.sqlite3"
    assert AssociatedStore(missing, None, create=False).all() == []
    assert not missing.parent.exists()


def test_replacing_with_another_type_keeps_metadata_and_the_old_version(
    tmp_path: Path, make_settings: Any
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "办法.md").write_text(
        "---\ntitle: 测试办法\nissuer: 测试单位\n---\n\n第一条　旧内容。\n", encoding="utf-8"
    )
    (lib / "细则.md").write_text("第一条　细则内容。\n", encoding="utf-8")
    (lib / "细则.docx").write_bytes(docx_bytes(RULE))
    folder = LibraryFolder(make_settings(tmp_path, ingest={"library_dirs": [lib]}))
    before = sorted(p.name for p in lib.iterdir())
    with pytest.raises(UploadRefused, match="细则.docx"):  # the new version would overwrite another document
        folder.upload("新版.docx", docx_bytes(RULE), {}, replace="细则.md")
    assert sorted(p.name for p in lib.iterdir()) == before

    change = folder.upload("新版.docx", docx_bytes(RULE), {"date": "2025-01-01"}, replace="办法.md")
    assert (change.file, change.action) == ("办法.docx", "replace")
    assert not (lib / "办法.md").exists()
    meta = folder.metadata(lib / "办法.docx")
    assert (meta["title"], meta["issuer"], meta["date"]) == ("测试办法", "测试单位", "2025-01-01")
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "removed").iterdir()] == ["办法.md"]


def test_reindex_refreshes_the_served_index_before_reporting(
    tmp_path: Path, make_settings: Any, hashing_embeddings: Any
) -> None:
    """After an admin ingest, the served library already holds the new document (the ingest's
    thread read it, not the next question); a failing refresh does not fail the ingest."""
    from assistant.service import open_library
    from ingest.library_admin import AdminLibrary

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "办法.md").write_text("---\ntitle: 测试办法\n---\n\n第一条　旧内容。\n", encoding="utf-8")
    settings = make_settings(tmp_path, ingest={"library_dirs": [lib]})
    index = open_library(settings, hashing_embeddings)
    settings.library.refresh_interval_s = 3600.0  # questions alone would not look for a long time
    served = index.current()
    calls: list[int] = []

    def refresh() -> None:
        calls.append(len(index.refresh()))

    admin = AdminLibrary(settings, hashing_embeddings, after_ingest=refresh)
    (lib / "细则.md").write_text("---\ntitle: 测试细则\n---\n\n第一条　细则内容。\n", encoding="utf-8")
    report = admin.reindex()
    assert report["documents_added"] == 2
    assert calls == [2] and index.current() is not served
    assert "测试细则" in index.current().titles

    def broken() -> None:
        raise RuntimeError("store gone")

    (lib / "细则.md").write_text("---\ntitle: 测试细则\n---\n\n第一条　新的细则内容。\n", encoding="utf-8")
    report = AdminLibrary(settings, hashing_embeddings, after_ingest=broken).reindex()
    assert report["documents_updated"] == 1
