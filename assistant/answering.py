"""The assistant: retrieve, decide whether to answer, answer with verbatim citations.

``Assistant`` is built once (``assistant.service.build_assistant``) and used by
the UI, the HTTP API, the CLI and the evaluation harness.

* The extractive answerer (default, no LLM) quotes whole sentences or
  enumerated items of the best evidence chunks in 「」 and labels each quote
  with its source (《标题》第X条, or the speech's section heading). Every quote
  is a substring of a retrieved chunk and every article named is the label of
  one, by construction (``assistant.verify`` checks it anyway).
* The generative answerer (``settings.llm.mode == "generative"``) lives in
  ``assistant.llm``; its output is verified and, when it cannot be trusted,
  replaced by the extractive answer (mode ``generative→extractive``).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from assistant import safety
from assistant.config import Settings
from assistant.conversation import Condensed, History, condense
from assistant.schema import STATUS_AMENDED, STATUS_CURRENT, STATUS_REPEALED, Answer, Citation
from assistant.verify import ARTICLE_RE, locate, verify_articles, verify_quotes

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel
    from langchain_core.retrievers import BaseRetriever

logger = logging.getLogger(__name__)

DECLINE_TEXT = "资料库中没有找到能回答这个问题的依据，无法作答。"
INJECTION_TEXT = (
    "这个问题中含有要求我忽略资料来源、改变身份、不加引用或编造、冒充条文的内容，我不会照做："
    "我只依据资料库中的原文作答，所有引文都注明出处，不编造条文、条号或引语。"
)

_ENUM_ITEM = re.compile(r"^[（(][一二三四五六七八九十]+[）)]")
_LIST_QUESTION = re.compile(
    r"哪些|哪几|几种|几类|几项|几个|几方面|哪四|哪三|哪两|哪五|哪六|什么条件|哪种情形|什么情形|哪些情形|包括|包含|列举|有几|"
    r"\bwhich\b|\bwhat (are|were)\b|\blist\b|\bconditions\b|\bfactors\b",
    re.IGNORECASE,
)
_STRUCTURE_QUESTION = re.compile(r"(哪几|哪些|几)(项|个|方面|部分)?(工作|举措|措施|方面|部分|点意见)")
_MULTI_QUESTION = re.compile(r"分别|各自|两处|两个|和.{0,8}(分别|各)|党纪.{0,12}(政务|公职)|以及|还要|同时|另外")
_UNIT_END = "。！？!?"
_STOPWORDS = frozenset(
    "讲话 什么 哪些 怎么 怎样 如何 是否 可以 能不能 规定 要求 分别 还有 的话 是不是 会不会 多少 一个 这个 那个 "
    "里面 说 提出 为什么 为啥 有没有 情况 问题 按照 根据 关于 一下 具体 应该 应当 需要 现在 时候 我们 他们 你们 "
    "自己 一般 这些 那些 或者 以及 这种 那种 知道 请问 告诉 部分 又是 是什么 什么样 哪个 哪里 吗 呢 了 的 "
    "资料 资料库 文件 原文".split()
)
_LATIN = re.compile(r"[A-Za-z]")
_CJK = re.compile(r"[\u4e00-\u9fff]")


# ---------------------------------------------------------------- small helpers


def short_title(title: str) -> str:
    """Drop the explanatory tail of a bracket: 问责条例（2016年版，已由…取代） → 问责条例（2016年版）."""

    def _first(m: re.Match[str]) -> str:
        inner = re.split(r"[，,；;—]", m.group(1))[0].strip()
        return f"（{inner}）" if inner else ""

    return re.sub(r"[（(]([^）)]*)[）)]", _first, title).strip()


def source_label(meta: dict[str, Any]) -> str:
    """《标题》第X条, or 《标题》（section heading） for documents without articles."""
    title = f"《{short_title(str(meta.get('title') or meta.get('file') or ''))}》"
    article = str(meta.get("article") or "")
    if article:
        return f"{title}{article}"
    heading = str(meta.get("heading_path") or "")
    return f"{title}（{heading}）" if heading else title


def is_english(question: str) -> bool:
    return len(_LATIN.findall(question)) > 2 * len(_CJK.findall(question))


def is_list_question(question: str) -> bool:
    return bool(_LIST_QUESTION.search(question))


_CLAUSE_SPLIT = re.compile(r"[，,。？?！!；;]")
_PART_SPLIT = re.compile(r"(?<=[？?；;])")
SPEECH_KIND = "讲话"
_SPEECH_CUE = re.compile(r"讲话|讲稿|会上(的)?发言")
_RULE_CUE = re.compile(
    r"法律|法规|规定|条例|规则|办法|制度|文件|意见|组织上|组织处理|处分|问责|纪律|党纪|政务|中央|按.{0,4}(法|规)"
)
_NAMED_DOC = re.compile(r"《([^》]{2,40})》|[“\"]([^”\"]{2,20})[”\"](?:里|中|当中|文件|规定|的规定|这份|这个文件)")


def is_speech(doc: Document) -> bool:
    return str(doc.metadata.get("kind") or "") == SPEECH_KIND


def bridge_parts(question: str) -> tuple[str, str] | None:
    """(speech premise, rule question) of a question that links a speech theme to a rule.

    A bridge question cites the speech in a premise clause ("讲话要求…，") and asks,
    in a later clause that does not mention the speech, about what a rule or law says.
    """
    clauses = [c.strip() for c in _CLAUSE_SPLIT.split(question) if c.strip()]
    if len(clauses) < 2 or _SPEECH_CUE.search(clauses[-1]):
        return None
    speech = [c for c in clauses if _SPEECH_CUE.search(c)]
    rest = [c for c in clauses if not _SPEECH_CUE.search(c)]
    if not speech or not rest:
        return None
    rule = "，".join(rest)
    if not _RULE_CUE.search(rule):
        return None
    return "，".join(speech), rule


def question_parts(question: str) -> list[str]:
    """The sub-questions of a multi-part question (["…？", "…？"]); [] for a single question.

    Premise clauses that only cite the speech are left out of each part.
    """
    parts: list[str] = []
    for piece in _PART_SPLIT.split(question):
        clauses = [c for c in _CLAUSE_SPLIT.split(piece) if c.strip()]
        kept = [c for c in clauses if not _SPEECH_CUE.search(c)] or clauses
        text = "，".join(kept)
        if len(_CJK.findall(text)) >= 4:
            parts.append(text)
    return parts if len(parts) >= 2 else []


@dataclass
class Unit:
    """A sentence or enumerated item of a chunk (offsets into the chunk text)."""

    start: int
    end: int
    text: str
    item: bool = False  # an enumerated item （一）…
    score: float = 0.0


@dataclass
class Span:
    """A contiguous quoted piece of one chunk."""

    doc: Document
    start: int  # offsets in the chunk text
    end: int
    item: bool = False

    @property
    def text(self) -> str:
        return self.doc.page_content[self.start : self.end]


LEXICAL_WEIGHT = 0.08
DOCUMENT_MARGIN = 0.05  # a second document's best chunk this close to the best one is quoted too
PART_MARGIN = 0.12  # how far below the best a chunk may be and still answer one part of a question
MAX_BLOCKS = 4


@dataclass
class _Candidate:
    doc: Document
    units: list[Unit]
    combined: float = 0.0

    @property
    def lexical(self) -> float:
        return max((u.score for u in self.units), default=0.0)


@dataclass
class Block:
    """What one source contributes to an answer."""

    doc: Document
    spans: list[Span] = field(default_factory=list)  # in text order


def split_units(doc: Document) -> list[Unit]:
    """Sentences and enumerated items (one whole line each) of a chunk.

    The leading article label (第X条) is left out, and so are lines that only
    repeat a section heading of the chunk's ``heading_path``.
    """
    text = doc.page_content
    article = str(doc.metadata.get("article") or "")
    headings = {h.strip() for h in str(doc.metadata.get("heading_path") or "").split(" / ") if h.strip()}
    units: list[Unit] = []
    pos = 0
    for line in text.split("\n"):
        line_start, line_end = pos, pos + len(line)
        pos = line_end + 1
        s = line_start + len(line) - len(line.lstrip())
        e = line_start + len(line.rstrip())
        if e <= s:
            continue
        if article and not units and text.startswith(article, s):
            s += len(article)
            while s < e and text[s].isspace():
                s += 1
        if e <= s:
            continue
        if _ENUM_ITEM.match(text[s:e]):
            units.append(Unit(s, e, text[s:e], item=True))
            continue
        begin = s
        i = s
        while i < e:
            if text[i] in _UNIT_END:
                stop = i + 1
                while stop < e and text[stop] in "”’」』\"":
                    stop += 1
                _add_sentence(units, text, begin, stop)
                begin = i = stop
                continue
            i += 1
        _add_sentence(units, text, begin, e)
    kept = [u for u in units if u.text.rstrip("。.") not in headings]
    return kept or units


def _add_sentence(units: list[Unit], text: str, begin: int, end: int) -> None:
    raw = text[begin:end]
    s = begin + len(raw) - len(raw.lstrip())
    e = begin + len(raw.rstrip())
    if e > s:
        units.append(Unit(s, e, text[s:e]))


def _tokens(text: str) -> list[str]:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    out: list[str] = []
    for tok in jieba.lcut_for_search(text):
        tok = tok.strip()
        if len(tok) < 2 or tok in _STOPWORDS or not _CJK.search(tok):
            continue
        out.append(tok)
    return out


def _bigrams(text: str) -> set[str]:
    chars = [c for c in text if _CJK.match(c)]
    return {a + b for a, b in zip(chars, chars[1:], strict=False)}


class UnitScorer:
    """Lexical relevance of sentences to the question (jieba terms weighted by IDF, plus char bigrams)."""

    def __init__(self, question: str, context: str = "") -> None:
        self.terms: dict[str, float] = {}
        for tok in _tokens(context):
            self.terms[tok] = max(self.terms.get(tok, 0.0), 0.3)
        for tok in _tokens(question):
            self.terms[tok] = 1.0
        self.bigrams = _bigrams(question)

    def score_all(self, units: Sequence[Unit]) -> None:
        for u, score in zip(units, self.scores(units), strict=True):
            u.score = score

    def scores(self, units: Sequence[Unit]) -> list[float]:
        """The score of every unit (IDF over ``units``), without touching ``Unit.score``."""
        n = max(1, len(units))
        df = {t: sum(1 for u in units if t in u.text) for t in self.terms}
        out: list[float] = []
        for u in units:
            score = 0.0
            for term, weight in self.terms.items():
                if term in u.text:
                    score += weight * min(len(term), 4) / 2 * math.log(1 + n / max(1, df[term]))
            if self.bigrams:
                score += 1.5 * len(self.bigrams & _bigrams(u.text)) / len(self.bigrams)
            out.append(score)
        return out


def _merge_spans(doc: Document, chosen: list[Unit]) -> list[Span]:
    """Contiguous chosen units (only whitespace between them) become one span."""
    spans: list[Span] = []
    text = doc.page_content
    for u in sorted(chosen, key=lambda x: x.start):
        if spans and not spans[-1].item and not u.item and not text[spans[-1].end : u.start].strip():
            spans[-1].end = u.end
        else:
            spans.append(Span(doc, u.start, u.end, item=u.item))
    return spans


# ---------------------------------------------------------------- the assistant


@dataclass
class Decision:
    """Why the assistant will not answer from the evidence (None: it will)."""

    reason: str  # "empty" | "too_long" | "injection" | "missing" | "weak" | "unsupported"
    text: str


class Assistant:
    """Question answering over the retrieved library chunks; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        retriever: BaseRetriever,
        *,
        chat_model: BaseChatModel | None = None,
        embeddings: Embeddings | None = None,
        collection: Any = None,
        library_chunks: Sequence[Document] = (),
    ) -> None:
        self.settings = settings
        self.retriever = retriever
        self.chat_model = chat_model
        self.embeddings = embeddings
        self.collection = collection
        self.library_chunks = list(library_chunks)
        self._by_id: dict[str, Document] = {
            str(d.metadata.get("chunk_id") or ""): d for d in self.library_chunks
        }
        self.missing = safety.load_missing_documents(
            settings.retrieval.catalogue, list(settings.ingest.library_dirs)
        )
        self.titles_by_file: dict[str, str] = {}
        for chunk in self.library_chunks:
            f = str(chunk.metadata.get("file") or "")
            if f and f not in self.titles_by_file:
                self.titles_by_file[f] = str(chunk.metadata.get("title") or f)
        # Versions held in the library: old file -> current file (and back).
        self.successor: dict[str, str] = {}
        for chunk in self.library_chunks:
            f = str(chunk.metadata.get("file") or "")
            nxt = str(chunk.metadata.get("superseded_by") or "")
            if f and nxt in self.titles_by_file and nxt != f:
                self.successor[f] = nxt
        self.predecessor = {new: old for old, new in self.successor.items()}
        self._articles: dict[tuple[str, str], Document] = {}
        for chunk in sorted(self.library_chunks, key=lambda c: int(c.metadata.get("chunk_index") or 0)):
            key = (str(chunk.metadata.get("file") or ""), str(chunk.metadata.get("article") or ""))
            if key[1] and key not in self._articles:
                self._articles[key] = chunk

    # ------------------------------------------------------------ public API

    def ask(self, question: str, history: History | None = None) -> Answer:
        return self.ask_with_evidence(question, history)[0]

    def ask_with_evidence(
        self, question: str, history: History | None = None
    ) -> tuple[Answer, list[Document]]:
        """The answer and its evidence: the retrieved chunks in rank order, followed by
        any other chunk a citation points at (e.g. sibling section headings)."""
        answer: Answer | None = None
        docs: list[Document] = []
        for piece in self._run(question, history, stream=False):
            if isinstance(piece, Answer):
                answer = piece
            elif isinstance(piece, list):
                docs = piece
        assert answer is not None
        have = {str(d.metadata.get("chunk_id") or d.id or "") for d in docs}
        extra_ids = [c.chunk_id for c in answer.citations if c.chunk_id not in have]
        for cid in dict.fromkeys(extra_ids):
            if cid in self._by_id:
                docs.append(self._by_id[cid])
        return answer, docs

    def stream(self, question: str, history: History | None = None) -> Iterator[str | Answer]:
        """Text pieces as they are produced, then the final ``Answer`` (which is authoritative)."""
        for piece in self._run(question, history, stream=True):
            if isinstance(piece, str | Answer):
                yield piece

    def library(self) -> dict[str, Any]:
        """What the index holds (``assistant.store.library_stats``)."""
        from assistant.store import library_stats

        if self.collection is None:
            return {"documents": 0, "chunks": 0, "documents_detail": []}
        return library_stats(self.collection)

    # ------------------------------------------------------------ pipeline

    def retrieve(self, query: str) -> list[Document]:
        return list(self.retriever.invoke(query))

    def _bridge_evidence(self, condensed: Condensed, docs: list[Document]) -> list[Document]:
        """For a question linking the speech to a rule, make sure the top evidence holds both.

        When the top chunks are all from the speech (or all from rules), the missing side
        is retrieved with its own part of the question and its best chunk joins the top 3.
        """
        parts = bridge_parts(condensed.original)
        if parts is None or not docs:
            return docs
        top = docs[:5]
        out = list(docs)
        for want_speech, query in ((False, parts[1]), (True, parts[0])):
            if any(is_speech(d) == want_speech for d in top):
                continue
            found = [d for d in self.retrieve(query) if is_speech(d) == want_speech]
            if not found or top_score(found[0]) < self.settings.retrieval.decline_threshold:
                continue
            extra = found[0]
            ids = {str(d.metadata.get("chunk_id") or d.id or "") for d in out}
            if str(extra.metadata.get("chunk_id") or extra.id or "") in ids:
                continue
            out.insert(min(2, len(out)), extra)
        return out

    def _run(
        self, question: str, history: History | None, *, stream: bool
    ) -> Generator[str | Answer | list[Document], None, None]:
        question = (question or "").strip()
        if not question:
            yield Answer(text="请输入问题。", declined=True, mode=self._mode())
            return
        limit = self.settings.server.max_question_chars
        if len(question) > limit:
            yield Answer(
                text=f"问题过长（{len(question)}字，上限{limit}字），请精简后再问。",
                declined=True,
                mode=self._mode(),
            )
            return

        injection = safety.check_injection(question)
        legit = injection.remainder if injection.detected else question
        condensed = self._condense(legit, history) if legit else Condensed(query="", original=question)
        docs = self.retrieve(condensed.query) if condensed.query else []
        docs = self._bridge_evidence(condensed, docs)
        yield docs

        decision = self._decide(question, condensed, injection, docs)
        if decision is not None:
            answer = Answer(text=decision.text, declined=True, mode=self._mode())
            if stream:
                yield answer.text
            yield answer
            return

        prefix = ""
        notices: list[str] = []
        if injection.detected:
            prefix = INJECTION_TEXT + "\n以下仅就问题中正当的部分，依据资料库原文作答：\n"
            notices.append("已忽略问题中要求改变回答规则的内容。")

        if self.chat_model is not None and self.settings.llm.mode == "generative":
            from assistant.llm import generate_answer

            if stream and prefix:
                yield prefix
            answer = yield from generate_answer(self, condensed, docs, stream=stream)
            answer.text = prefix + answer.text
        else:
            answer = self.extractive(condensed, docs)
            answer.text = prefix + answer.text
            if stream:
                yield from _pieces(answer.text)
        answer.notices = notices + answer.notices
        if injection.detected:
            # The manipulation was refused; only the legitimate part was answered from the sources.
            answer.declined = True
        yield answer

    def _mode(self) -> Any:
        return "generative" if self.chat_model is not None and self.settings.llm.mode == "generative" else "extractive"

    def _condense(self, question: str, history: History | None) -> Condensed:
        if history and self.chat_model is not None and self.settings.llm.mode == "generative":
            from assistant.llm import condense_with_llm

            return condense_with_llm(self.chat_model, question, history)
        return condense(question, history)

    # ------------------------------------------------------------ declining

    def _decide(
        self,
        question: str,
        condensed: Condensed,
        injection: safety.InjectionCheck,
        docs: list[Document],
    ) -> Decision | None:
        nearest = self._nearest_titles(docs)
        if injection.fabricate or (injection.detected and not injection.remainder):
            text = INJECTION_TEXT + self._claimed_quote_note(question)
            missing = safety.find_missing_document(question, self.missing, self._library_titles())
            if missing is not None:
                text += f"资料库未收录{missing.display}，无法提供其内容。"
            return Decision("injection", text + nearest)

        missing = safety.find_missing_document(condensed.query, self.missing, self._library_titles())
        if missing is not None:
            note = missing.note.rstrip("。") + "。" if missing.note else ""
            return Decision(
                "missing",
                f"{DECLINE_TEXT}资料库未收录{missing.display}，无法提供或推测其内容。{note}{nearest}",
            )
        if not docs or max(top_score(d) for d in docs[:5]) < self.settings.retrieval.decline_threshold:
            return Decision("weak", f"{DECLINE_TEXT}{nearest}")

        evidence = self.select_chunks(condensed, docs)
        kinds = safety.unsupported_kinds(
            condensed.original,
            [d.page_content for d in evidence],
            [str(d.metadata.get("article") or "") for d in evidence],
            weights=self._term_weights(condensed.original),
        )
        if "article_no" in safety.asked_kinds(condensed.original) and "article_no" not in kinds:
            if self._names_unknown_document(condensed.original, evidence):
                kinds.append("article_no")
        if kinds:
            what = "、".join(safety.KIND_NAMES[k] for k in kinds)
            return Decision(
                "unsupported",
                f"{DECLINE_TEXT}检索到的相关原文中没有关于{what}的内容，我不能推测或编造。{nearest}",
            )
        return None

    def _term_weights(self, question: str) -> dict[str, float]:
        """The content words of the sub-question that asks for a figure (the whole question when
        that part says little of its own), weighted by their IDF in the library. The asking words
        themselves (多长时间 …) and words the library lacks are left out."""
        n = max(1, len(self.library_chunks))

        def weigh(text: str) -> dict[str, float]:
            text = safety.strip_kind_words(text)
            weights: dict[str, float] = {}
            for term in dict.fromkeys(_tokens(text)):
                df = sum(1 for c in self.library_chunks if term in c.page_content)
                if df:
                    weights[term] = math.log(1 + n / df)
            return weights

        parts = question_parts(question)
        asking = [p for p in parts if safety.asked_kinds(p)]
        if asking:
            weights = weigh(asking[0])
            if len(weights) >= 3:
                return weights
        return weigh(question)

    def _names_unknown_document(self, question: str, evidence: Sequence[Document]) -> bool:
        """The question names a document (《X》, or “X”里/中) that none of the evidence comes from
        and that is no library title: the evidence's article numbers do not answer it."""
        from assistant.references import match_titles, mentioned_titles

        titles = self._library_titles()
        evidence_titles = {str(d.metadata.get("title") or "") for d in evidence}
        for m in _NAMED_DOC.finditer(question):
            name = m.group(1) or m.group(2) or ""
            known = match_titles(name, titles) or mentioned_titles(name, titles)
            if not known:
                return True
            if not evidence_titles & set(known):
                return True
        return False

    def _library_titles(self) -> list[str]:
        return list(self.titles_by_file.values())

    def _nearest_titles(self, docs: Sequence[Document]) -> str:
        titles: list[str] = []
        for d in docs[:5]:
            t = f"《{short_title(str(d.metadata.get('title') or ''))}》"
            if t != "《》" and t not in titles:
                titles.append(t)
        if not titles:
            return ""
        return "资料库中与此最接近的文件有：" + "、".join(titles[:3]) + "。"

    def _claimed_quote_note(self, question: str) -> str:
        """Point out claimed source text (“…” in the question) that the library does not contain."""
        notes: list[str] = []
        from assistant.verify import normalise

        corpus = [normalise(c.page_content) for c in self.library_chunks]
        for claim in re.findall(r"[“\"]([^”\"]{6,80})[”\"]", question):
            if corpus and not any(normalise(claim) in c for c in corpus):
                notes.append(f"经核对，资料库原文中没有“{claim}”这句话。")
        return "".join(notes)

    # ------------------------------------------------------------ extractive

    def select_chunks(self, condensed: Condensed, docs: list[Document]) -> list[Document]:
        """The chunks to quote: the best by retrieval score plus lexical fit, and close runners-up."""
        return [c.doc for c in self._rank_candidates(condensed, docs)]

    def _rank_candidates(self, condensed: Condensed, docs: list[Document]) -> list[_Candidate]:
        """Re-rank the top retrieved chunks by fused score + lexical fit, keep the close ones.

        Lexical fit is the best sentence score of the chunk (IDF over the sentences of
        all candidates), scaled to at most ``LEXICAL_WEIGHT``; it only reorders
        chunks whose retrieval scores are close. Besides the best chunk and its close
        runners-up, the answer covers
        * the best chunk of a second document whose score is close (evidence that spans documents),
        * for a question linking the speech to a rule: the best chunk of each side,
        * for a multi-part question: the chunk that fits each part best.
        """
        pool = docs[:5]
        if not pool:
            return []
        question = condensed.original
        scorer = UnitScorer(question, condensed.context)
        cands = [_Candidate(d, split_units(d)) for d in pool]
        all_units = [u for c in cands for u in c.units]
        scorer.score_all(all_units)
        english = is_english(question)
        best_lex = max((c.lexical for c in cands), default=0.0)
        for rank, c in enumerate(cands):
            lex = c.lexical / best_lex if best_lex > 0 and not english else 0.0
            c.combined = _retrieval_score(c.doc) + LEXICAL_WEIGHT * lex
            c.combined -= 0.001 * rank  # stable for ties
        ordered = sorted(cands, key=lambda c: -c.combined)
        multi = bool(_MULTI_QUESTION.search(question))
        limit = 3 if multi else 2
        margin = 0.10 if multi else 0.06
        # An article the question names explicitly comes first; the rest compete among themselves
        # (its reference bonus says nothing about how close the others are).
        referenced = [c for c in ordered if c.doc.metadata.get("match") == "reference"][:1]
        others = [c for c in ordered if c not in referenced]
        if referenced:
            limit += 1
        chosen = referenced + others[:1]
        if not others:
            return chosen
        best = others[0].combined
        for c in others[1:]:
            if len(chosen) >= limit:
                break
            if c.combined < best - margin:
                break
            if not english and best_lex > 0 and c.lexical < 0.4 * best_lex:
                continue
            chosen.append(c)

        def lexical_ok(c: _Candidate, share: float) -> bool:
            return english or best_lex <= 0 or c.lexical >= share * best_lex

        # Evidence spanning documents: the best chunk of another document when it is close.
        # (Closeness by retrieval score: lexical fit says little across documents.)
        files = {c.doc.metadata.get("file") for c in chosen}
        if len(files) == 1:
            best_retrieval = max(_retrieval_score(c.doc) for c in others)
            for c in others:
                if c.doc.metadata.get("file") in files:
                    continue
                if _retrieval_score(c.doc) >= best_retrieval - DOCUMENT_MARGIN and lexical_ok(c, 0.3):
                    chosen.append(c)
                break
        # Speech premise + rule question: both sides.
        if bridge_parts(question) is not None:
            for side in (True, False):
                if not any(is_speech(c.doc) == side for c in chosen):
                    pick = next((c for c in ordered if is_speech(c.doc) == side), None)
                    if pick is not None:
                        chosen.append(pick)
        # Multi-part question: the best-fitting chunk of each part.
        for part in question_parts(question):
            part_scores = iter(UnitScorer(part).scores([u for c in ordered for u in c.units]))
            fits = [max((next(part_scores) for _ in c.units), default=0.0) for c in ordered]
            eligible = [
                (fit, -i) for i, (c, fit) in enumerate(zip(ordered, fits, strict=True))
                if fit > 0 and c.combined >= best - PART_MARGIN
            ]
            if eligible:
                pick = ordered[-max(eligible)[1]]
                if pick not in chosen and len(chosen) < MAX_BLOCKS:
                    chosen.append(pick)
        return chosen[:MAX_BLOCKS]

    def extractive(self, condensed: Condensed, docs: list[Document]) -> Answer:
        """Answer by quoting the most relevant sentences / items of the selected chunks."""
        question = condensed.original
        chosen = self._rank_candidates(condensed, docs)
        english = is_english(question)
        list_mode = is_list_question(question) or condensed.ordinal is not None
        chosen = self._with_versions(chosen, question)
        blocks: list[Block] = []
        budgets = [420, 260, 200, 180]
        for rank, cand in enumerate(chosen):
            if not cand.units:
                continue
            budget = budgets[min(rank, len(budgets) - 1)]
            if english and self.embeddings is not None and sum(len(u.text) for u in cand.units) > budget:
                self._embed_scores(question, cand.units)  # lexical overlap is useless across languages
            blocks.append(self._block(cand.doc, cand.units, budget, list_mode, condensed.ordinal))

        heading_line = ""
        if chosen and _STRUCTURE_QUESTION.search(question):
            heading_line = self._sibling_headings(chosen[0].doc)

        return self._compose(blocks, english=english, heading_line=heading_line)

    def _with_versions(self, chosen: list[_Candidate], question: str) -> list[_Candidate]:
        """Add the other version of quoted text when the library holds two versions.

        * An article named explicitly in the question (第X条 of a text with two versions):
          the same-numbered article of the other version, so the reader sees both.
        * Superseded text: the article of the current version that corresponds to it
          (the one sharing most wording), right after it.
        """
        out: list[_Candidate] = []
        seen = {str(c.doc.metadata.get("chunk_id") or "") for c in chosen}
        scorer = UnitScorer(question)

        def add(doc: Document | None) -> None:
            if doc is None:
                return
            cid = str(doc.metadata.get("chunk_id") or "")
            if cid in seen:
                return
            seen.add(cid)
            units = split_units(doc)
            scorer.score_all(units)
            out.append(_Candidate(doc, units))

        for cand in chosen:
            out.append(cand)
            meta = cand.doc.metadata
            file, article = str(meta.get("file") or ""), str(meta.get("article") or "")
            if not article:
                continue
            if meta.get("match") == "reference":
                other = self.successor.get(file) or self.predecessor.get(file)
                sibling = self._articles.get((other, article)) if other else None
                add(sibling)
                if sibling is not None and str(sibling.metadata.get("file")) in self.successor:
                    add(self._corresponding_current(sibling))
            if file in self.successor:
                add(self._corresponding_current(cand.doc))
        return out[: MAX_BLOCKS + 1]

    def _corresponding_current(self, old: Document) -> Document | None:
        """The article of the current version that shares most wording with ``old``."""
        current = self.successor.get(str(old.metadata.get("file") or ""))
        if not current:
            return None
        grams = _bigrams(old.page_content)
        if not grams:
            return None
        best: tuple[float, Document | None] = (0.0, None)
        for (file, _article), chunk in self._articles.items():
            if file != current:
                continue
            other = _bigrams(chunk.page_content)
            overlap = len(grams & other) / max(1, len(grams | other))
            if overlap > best[0]:
                best = (overlap, chunk)
        return best[1] if best[0] >= 0.3 else None

    def _embed_scores(self, question: str, units: list[Unit]) -> None:
        assert self.embeddings is not None
        q = self.embeddings.embed_query(question)
        vecs = self.embeddings.embed_documents([u.text for u in units])
        for u, v in zip(units, vecs, strict=True):
            u.score += 4.0 * sum(a * b for a, b in zip(q, v, strict=True))

    def _block(
        self, doc: Document, units: list[Unit], budget: int, list_mode: bool, ordinal: int | None
    ) -> Block:
        items = [u for u in units if u.item]
        if list_mode and len(items) >= 2:
            first, last = units.index(items[0]), units.index(items[-1])
            if ordinal is not None and 1 <= ordinal <= len(items):
                chosen = [*units[max(0, first - 1) : first], items[ordinal - 1]]
            else:
                # the introducing sentence, every item (and sub-list intros), one relevant tail sentence
                chosen = units[max(0, first - 1) : last + 1]
                chosen += [u for u in units[last + 1 :] if u.score > 0.5][:1]
        elif sum(len(u.text) for u in units) <= budget:
            chosen = list(units)
        else:
            ranked = sorted(units, key=lambda u: (-u.score, u.start))
            best = ranked[0]
            chosen = [best]
            used = len(best.text)
            for u in ranked[1:]:
                if u.score <= 0 or u.score < 0.35 * best.score:
                    break
                if used + len(u.text) > budget:
                    continue
                chosen.append(u)
                used += len(u.text)
            # An enumerated item needs the sentence that introduces the list.
            if any(u.item for u in chosen) and items:
                intro = units[: units.index(items[0])][-1:]
                chosen.extend(u for u in intro if u not in chosen)
        return Block(doc, spans=_merge_spans(doc, sorted(chosen, key=lambda u: u.start)))

    def _sibling_headings(self, doc: Document) -> str:
        """For "哪几项工作" questions: the sub-headings of the section the top chunk is in."""
        path = str(doc.metadata.get("heading_path") or "")
        parent = path.split(" / ")[0] if path else ""
        if not parent:
            return ""
        subs: list[str] = []
        for chunk in self.library_chunks:
            if chunk.metadata.get("file") != doc.metadata.get("file"):
                continue
            hp = str(chunk.metadata.get("heading_path") or "").split(" / ")
            if len(hp) >= 2 and hp[0] == parent and hp[1] not in subs and hp[1] in chunk.page_content:
                subs.append(hp[1])
        if len(subs) < 2:
            return ""
        title = short_title(str(doc.metadata.get("title") or ""))
        listed = "".join(f"\n（{i}）「{s}」" for i, s in enumerate(subs, start=1))
        return f"《{title}》“{parent}”部分分为{len(subs)}项：{listed}"

    def _compose(self, blocks: list[Block], *, english: bool, heading_line: str = "") -> Answer:
        lines: list[str] = []
        citations: list[Citation] = []
        notices: list[str] = []
        if heading_line:
            lines.append(heading_line)
        for block in blocks:
            meta = block.doc.metadata
            label = source_label(meta)
            spans = list(block.spans)
            head_spans: list[Span] = []
            while spans and not spans[0].item:
                head_spans.append(spans.pop(0))
                if spans and spans[0].item:
                    break
            lead_quotes = "".join(f"「{s.text}」" for s in head_spans)
            if english:
                lines.append(f"According to {label}: {lead_quotes}")
            else:
                lines.append(f"{label}：{lead_quotes}")
            for s in spans:
                m = _ENUM_ITEM.match(s.text)
                if m and s.item:
                    lines.append(f"{m.group(0)}「{s.text[m.end():]}」")
                else:
                    lines.append(f"「{s.text}」")
            for s in block.spans:
                citations.append(self._citation(s))
            notice = self.status_notice(meta)
            if notice and notice not in notices:
                notices.append(notice)
        if heading_line:
            citations.extend(self._heading_citations(heading_line, blocks))
        text = "\n".join(lines + notices)
        return Answer(text=text, citations=citations, declined=False, mode="extractive", notices=notices)

    def _heading_citations(self, heading_line: str, blocks: list[Block]) -> list[Citation]:
        out: list[Citation] = []
        file = blocks[0].doc.metadata.get("file") if blocks else None
        for quote in re.findall(r"「([^」]+)」", heading_line):
            for chunk in self.library_chunks:
                if chunk.metadata.get("file") == file and quote in chunk.page_content:
                    pos = chunk.page_content.index(quote)
                    out.append(self._citation(Span(chunk, pos, pos + len(quote))))
                    break
        return out

    def _citation(self, span: Span) -> Citation:
        meta = span.doc.metadata
        base = int(meta.get("start") or 0)
        quote = span.text
        if span.item:
            m = _ENUM_ITEM.match(quote)
            if m:
                return self._citation(Span(span.doc, span.start + m.end(), span.end))
        return Citation(
            file=str(meta.get("file") or ""),
            title=str(meta.get("title") or ""),
            article=str(meta.get("article") or ""),
            quote=quote,
            chunk_id=str(meta.get("chunk_id") or span.doc.id or ""),
            start=base + span.start,
            end=base + span.end,
            status=str(meta.get("status") or STATUS_CURRENT),
            heading_path=str(meta.get("heading_path") or ""),
        )

    def status_notice(self, meta: dict[str, Any]) -> str:
        """注意：《…》已废止/已修正，现行为…  ("" for current texts)."""
        status = str(meta.get("status") or "")
        if status not in (STATUS_REPEALED, STATUS_AMENDED):
            return ""
        title = short_title(str(meta.get("title") or meta.get("file") or ""))
        successor = str(meta.get("superseded_by") or "")
        if successor in self.titles_by_file:
            successor = f"《{short_title(self.titles_by_file[successor])}》"
        elif successor.endswith((".md", ".txt", ".docx", ".pdf", ".html")):
            successor = f"《{successor.rsplit('.', 1)[0]}》"
        verb = "已废止" if status == STATUS_REPEALED else "已被修正"
        tail = f"，现行为{successor}" if successor else ""
        return f"注意：《{title}》{verb}{tail}。以上引文仅供参考，请以现行文本为准。"


def _retrieval_score(doc: Document) -> float:
    return float(doc.metadata.get("score") or top_score(doc))


def top_score(doc: Document) -> float:
    """The evidence strength used for declining: the dense cosine when present, else the fused score."""
    meta = doc.metadata
    for key in ("dense_score", "score"):
        value = meta.get(key)
        if isinstance(value, int | float):
            return float(value)
    return 0.0


def _pieces(text: str) -> Iterator[str]:
    """Split an answer into sentence-sized pieces for streaming (joined they give ``text``)."""
    for piece in re.findall(r"[^。！？\n]*(?:[。！？]」?|\n)|[^。！？\n]+$", text):
        if piece:
            yield piece


def check_answer(answer: Answer, docs: Sequence[Document]) -> tuple[list[str], list[str]]:
    """Unverifiable quotes and unknown articles of an answer (both empty when it is sound)."""
    _, bad_quotes = verify_quotes(answer.text, docs)
    _, bad_articles = verify_articles(answer.text, docs)
    return bad_quotes, bad_articles


__all__ = [
    "ARTICLE_RE",
    "DECLINE_TEXT",
    "INJECTION_TEXT",
    "Assistant",
    "check_answer",
    "locate",
    "short_title",
    "source_label",
    "top_score",
]
