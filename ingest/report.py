"""What one ingest run did: ``IngestReport`` (counts, skips and errors with Chinese reasons)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class IngestReport:
    documents_seen: int = 0
    documents_added: int = 0
    documents_updated: int = 0
    documents_unchanged: int = 0
    documents_pruned: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    views_embedded: int = 0  # extra vectors (ingest.views), not counted in chunks_*
    views_total: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, Chinese reason)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (file, Chinese reason)
    seconds: float = 0.0

    def summary_line(self) -> str:
        return (
            f"导入完成：读取文件 {self.documents_seen} 个（新增 {self.documents_added}、更新 {self.documents_updated}、"
            f"未变 {self.documents_unchanged}、移除 {self.documents_pruned}），本次嵌入 {self.chunks_embedded} 块"
            f"（另加句窗向量 {self.views_embedded} 个），库中共 {self.chunks_total} 块；跳过 {len(self.skipped)} 个，错误 {len(self.errors)} 个；"
            f"用时 {self.seconds:.1f} 秒"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [{"file": f, "reason": r} for f, r in self.skipped]
        data["errors"] = [{"file": f, "reason": r} for f, r in self.errors]
        data["seconds"] = round(self.seconds, 3)
        return data
