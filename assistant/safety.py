"""Decisions that make the assistant refuse or decline instead of answering.

* prompt injection in the question (fake system text, "ignore your sources",
  role play, requests to invent or pass off rule text);
* questions about documents the library does not hold (catalogue ``[[missing]]``
  or the "Not in the library" list of the library's SOURCES.md);
* questions asking for a kind of fact (an amount of money, a share, a head
  count, a period, an article number) that the evidence does not contain.

Document text is never interpreted here or anywhere else: it is only quoted.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- injection

_OVERRIDE_PATTERNS: tuple[str, ...] = (
    # "ignore / forget the instructions, sources, rules above"
    r"(忽略|无视|不要理会|别管|忘记|忘掉|抛开|跳过).{0,12}(指令|指示|规则|设定|提示词?|资料|来源|出处|限制|约束|要求|上文|以上|之前|前面)",
    # fake system / developer text
    r"(系统|管理员|开发者|后台)(提示|消息|指令|通知|设定)",
    r"【[^】]{0,30}(系统|管理员|开发者|授权|指令)[^】]{0,30}】",
    r"(已|被)授权.{0,10}(无需|不用|不必|可以)",
    r"<\|?(im_start|system|endoftext)\|?>|\[/?INST\]|<<SYS>>",
    r"(^|\n)\s*(system|assistant|系统)\s*[:：]",
    # role play
    r"(你|您)(现在|从现在起|从现在开始)(就)?(是|扮演|作为)",
    r"(假设|假如|假定|设想)(你|您)是",
    r"(你|您)就是.{0,12}(专家|系统|领导|机关|内部)",
    r"假装|扮演|角色扮演|进入.{0,6}模式|越狱",
    # "no need for sources"
    r"(不用|不必|无需|不需要|别|不要)(再)?(查|查阅|查询|引用|标注|依据|参考|看)(任何)?(资料|来源|出处|原文|文件|依据)?",
    r"不受.{0,6}(限制|约束)",
    r"(不公开|内部|保密|机密)(的)?(文件|材料|资料)",
    # English
    r"\b(ignore|disregard|forget|override)\b.{0,30}\b(instruction|instructions|rules|sources|context|prompt|above|previous)\b",
    r"\byou are now\b|\bfrom now on\b|\bpretend\b|\bact as\b|\brole[- ]?play\b|\bjailbreak\b|\bdeveloper mode\b",
    r"\bsystem prompt\b|\bsystem message\b",
    r"\b(no|without|don'?t|do not)\s+(need\s+to\s+)?(cite|citing|citations?|sources?)\b",
)

_FABRICATE_PATTERNS: tuple[str, ...] = (
    r"编造|杜撰|捏造|虚构|瞎编|胡编|伪造|冒充|假称|谎称",
    r"编(一|几)(条|段|个|句)",
    r"(起草|拟定|拟写|草拟|撰写|写|编|拟)(一|几)?(条|段|个|款)?.{0,24}(条款|条文|原文|规定条文)",
    r"就说(是|成|这|这篇|它|这是)?.{0,20}(规定|原文|原话|讲的|说的|写的)",
    r"当(作|成)?(原文|原话|条文)",
    r"(带上|加上|标上|编上|配上)(一个)?(条号|条文号)",
    r"\b(make up|made[- ]up|fabricate|invent)\b",
    r"\bdraft\b.{0,30}\b(rule|clause|article|regulation)\b",
)

_OVERRIDE_RE = [re.compile(p, re.IGNORECASE) for p in _OVERRIDE_PATTERNS]
_FABRICATE_RE = [re.compile(p, re.IGNORECASE) for p in _FABRICATE_PATTERNS]
_SENTENCE_SPLIT = re.compile(r"(?<=[。！？!?；;\n])|(?<=\.\s)|(?=【)|(?<=】)")
_CJK_OR_WORD = re.compile(r"[\u4e00-\u9fff]|[A-Za-z]{2,}")


@dataclass
class InjectionCheck:
    """What the question tries to do besides asking."""

    override: list[str] = field(default_factory=list)  # matched manipulation fragments
    fabricate: list[str] = field(default_factory=list)  # requests to invent / pass off rule text
    remainder: str = ""  # the question without the manipulating sentences

    @property
    def detected(self) -> bool:
        return bool(self.override or self.fabricate)


def _matches(patterns: list[re.Pattern[str]], text: str) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        m = pattern.search(text)
        if m:
            found.append(m.group(0))
    return found


def check_injection(question: str) -> InjectionCheck:
    """Detect manipulation in ``question``; ``remainder`` keeps only the innocent sentences."""
    check = InjectionCheck(
        override=_matches(_OVERRIDE_RE, question),
        fabricate=_matches(_FABRICATE_RE, question),
    )
    if not check.detected:
        check.remainder = question
        return check
    kept: list[str] = []
    for piece in _SENTENCE_SPLIT.split(question):
        if not piece.strip():
            continue
        if _matches(_OVERRIDE_RE, piece) or _matches(_FABRICATE_RE, piece):
            continue
        kept.append(piece)
    remainder = "".join(kept).strip()
    # Too little left to be a question of its own.
    if len(_CJK_OR_WORD.findall(remainder)) < 4:
        remainder = ""
    check.remainder = remainder
    return check


# ---------------------------------------------------------------- missing documents

_YEAR_RE = re.compile(r"(19|20)\d{2}")
_PAREN_RE = re.compile(r"[（(][^）)]*[）)]")
_ISSUER_PREFIXES = ("中国共产党", "中华人民共和国", "中共中央", "中央纪委", "中央")


@dataclass(frozen=True)
class MissingDocument:
    """A document the library is known not to hold."""

    title: str  # as listed, e.g. 中国共产党问责条例 (2019 revision)
    core: str  # the name without issuer prefix, brackets and year, e.g. 问责条例
    year: str  # "" when none is given

    note: str = ""

    @property
    def display(self) -> str:
        """A Chinese label, e.g. 《中国共产党问责条例》（2019年修订）."""
        if "《" in self.title:
            return self.title
        name = _PAREN_RE.sub("", self.title).strip()
        paren = _PAREN_RE.search(self.title)
        extra = paren.group(0)[1:-1].strip() if paren else ""
        if re.search(r"[A-Za-z]", extra) or not extra:
            extra = f"{self.year}年版" if self.year else ""
        return f"《{name}》（{extra}）" if extra else f"《{name}》"


def _core_name(title: str) -> str:
    name = _PAREN_RE.sub("", title)
    name = re.sub(r"[《》“”\"\s]", "", name)
    name = _YEAR_RE.sub("", name)
    name = re.sub(r"[A-Za-z ]+", "", name)
    changed = True
    while changed:
        changed = False
        for prefix in _ISSUER_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix) + 3:
                name = name[len(prefix) :]
                changed = True
    return name.strip("的")


def make_missing(title: str) -> MissingDocument:
    year = _YEAR_RE.search(title)
    return MissingDocument(title=title.strip(), core=_core_name(title), year=year.group(0) if year else "")


def _missing_from_catalogue(path: Path) -> list[MissingDocument]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        logger.warning("无法读取文件目录 %s：%s", path, exc)
        return []
    found: list[MissingDocument] = []
    for entry in data.get("missing", []) or []:
        if isinstance(entry, dict):
            title = str(entry.get("title") or entry.get("name") or "")
            if title:
                doc = make_missing(title)
                note = str(entry.get("note") or "")
                found.append(MissingDocument(title=doc.title, core=doc.core, year=doc.year, note=note))
                for alias in entry.get("aliases", []) or []:
                    found.append(MissingDocument(title=title, core=_core_name(str(alias)), year="", note=note))
        elif isinstance(entry, str):
            found.append(make_missing(entry))
    return found


def _missing_from_sources(path: Path) -> list[MissingDocument]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    found: list[MissingDocument] = []
    in_section = False
    for line in text.splitlines():
        if line.startswith("#"):
            in_section = "not in the library" in line.lower() or "未收录" in line
            continue
        if in_section and line.lstrip().startswith(("-", "*")):
            title = line.lstrip()[1:].strip()
            if title:
                found.append(make_missing(title))
    return found


def load_missing_documents(catalogue: Path, library_dirs: Sequence[Path]) -> list[MissingDocument]:
    """Documents known to be absent: catalogue ``[[missing]]`` first, else SOURCES.md lists."""
    if catalogue.is_file():
        found = _missing_from_catalogue(catalogue)
        if found:
            return found
    found = []
    for folder in library_dirs:
        sources = folder / "SOURCES.md" if folder.is_dir() else folder.parent / "SOURCES.md"
        if sources.is_file():
            found.extend(_missing_from_sources(sources))
    return found


def _mentions(question: str, core: str) -> bool:
    if not core:
        return False
    if core in question:
        return True
    # A distinctive tail of the name ("能上能下规定", "澄清正名工作的意见") is enough.
    return any(core[-n:] in question for n in range(len(core) - 1, 5, -1))


def find_missing_document(
    question: str, missing: Iterable[MissingDocument], library_titles: Iterable[str]
) -> MissingDocument | None:
    """The absent document the question asks about, if any.

    When the library holds a document with the same name (another version), the
    question must name the absent version's year to count as asking for it.
    """
    q = re.sub(r"\s", "", question)
    held = [_core_name(t) for t in library_titles]
    for doc in missing:
        if not _mentions(q, doc.core):
            continue
        same_name_held = any(doc.core in h or h in doc.core for h in held if h)
        if not same_name_held or (doc.year and doc.year in q):
            return doc
    return None


# ---------------------------------------------------------------- answer type

_NUM = r"(?:[0-9０-９]+(?:\.[0-9]+)?|[一二两三四五六七八九十][零〇一二两三四五六七八九十百千万]*)"
_KIND_QUESTION: dict[str, re.Pattern[str]] = {
    "money": re.compile(r"多少钱|多少元|金额|工资(是|有)?多少|补偿金.{0,4}多少|能领多少"),
    "ratio": re.compile(r"比例|百分之|占多少|几成"),
    "headcount": re.compile(r"多少(名|个|位)?(干部|人|同志|党员)|几(名|位)(干部|同志|党员)?|人数"),
    "period": re.compile(r"多久|多长时间|多长|几个月|几年|几天|多少天|多少日|期限是"),
    "article_no": re.compile(r"第几条|哪一条|哪条"),
}
_KIND_EVIDENCE: dict[str, re.Pattern[str]] = {
    "money": re.compile(rf"{_NUM}\s*(元|万元|千元)"),
    "ratio": re.compile(rf"{_NUM}\s*%|百分之|{_NUM}分之|比例"),
    "headcount": re.compile(rf"{_NUM}\s*(名|人|位)"),
    "period": re.compile(
        rf"{_NUM}\s*(个月|年|月|日|天|周|小时|个工作日)|之日起|期满"
    ),
    "article_no": re.compile(r"第[零〇一二两三四五六七八九十百千\d]+条"),
}


def strip_kind_words(question: str) -> str:
    """The question without the words that ask for a kind of fact (多长时间, 多少元 …)."""
    for pattern in _KIND_QUESTION.values():
        question = pattern.sub(" ", question)
    return question


def asked_kinds(question: str) -> list[str]:
    """Kinds of fact the question explicitly asks for (see ``_KIND_QUESTION``)."""
    return [kind for kind, pattern in _KIND_QUESTION.items() if pattern.search(question)]


_EVIDENCE_SENTENCE = re.compile(r"(?<=[。！？!?；;\n])")
RELEVANT_SHARE = 0.25  # share of the question's term weight a sentence must hold to bear on it


def _relevant_text(evidence_texts: Sequence[str], weights: Mapping[str, float]) -> str:
    """The evidence sentences that bear on the question: those that (together with the sentence
    before them, which often introduces a list or a figure) hold at least ``RELEVANT_SHARE`` of
    the question's term weight."""
    total = sum(weights.values())
    if total <= 0:
        return "\n".join(evidence_texts)
    kept: list[str] = []
    for text in evidence_texts:
        sentences = [s for s in _EVIDENCE_SENTENCE.split(text) if s.strip()]
        for i, sentence in enumerate(sentences):
            window = sentence if i == 0 else sentences[i - 1] + sentence
            held = sum(w for t, w in weights.items() if t in window)
            if held >= RELEVANT_SHARE * total:
                kept.append(sentence)
    return "\n".join(kept)


def unsupported_kinds(
    question: str,
    evidence_texts: Sequence[str],
    labels: Sequence[str] = (),
    weights: Mapping[str, float] | None = None,
) -> list[str]:
    """Kinds the question asks for that none of the evidence contains.

    ``labels`` are the article labels of the evidence chunks (an article number
    is answerable when the evidence chunk itself is an article). ``weights`` are
    the question's content words with their weight (e.g. IDF in the library):
    when given, an amount / share / count / period only counts in a sentence
    that bears on the question (see ``_relevant_text``), not anywhere in the evidence.
    """
    joined = "\n".join(evidence_texts)
    relevant = _relevant_text(evidence_texts, weights) if weights else joined
    missing: list[str] = []
    for kind in asked_kinds(question):
        if kind == "article_no" and any(labels):
            continue
        if not _KIND_EVIDENCE[kind].search(joined if kind == "article_no" else relevant):
            missing.append(kind)
    return missing


KIND_NAMES = {
    "money": "具体金额",
    "ratio": "具体比例",
    "headcount": "具体人数",
    "period": "具体时间或期限",
    "article_no": "具体条目编号",
}
