"""The assistant: a short pipeline over small parts.

    check → condense → retrieve → decide → answer → cite

* check: empty or over-long questions, injection (``assistant.injection``);
* condense: a follow-up becomes a standalone question (``assistant.conversation``,
  or the LLM in generative mode);
* retrieve: the hybrid retriever over one library snapshot (``assistant.library``),
  plus the missing side of a speech/rule bridge question (``assistant.evidence``);
* decide: the decline policy (``assistant.decline``);
* answer: the generative answerer when configured, else (and as its fallback) the
  extractive one; both cite what they quote (``assistant.citations``).

``Assistant`` is built once (``assistant.service.build_assistant``) and used by the UI,
the HTTP API, the CLI and the evaluation harness. Each question reads one snapshot of
the library, so a re-ingest never mixes two states within an answer.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document

from assistant import messages
from assistant.config import Settings
from assistant.conversation import Condensed, History, condense
from assistant.decline import Decision, DeclinePolicy
from assistant.evidence import Candidate, EvidenceSelector, bridge_evidence, chunk_id
from assistant.extractive import ExtractiveAnswerer
from assistant.generative import GenerativeAnswerer
from assistant.injection import check_injection
from assistant.library import Library, LibraryIndex
from assistant.question import Analysis, analyse
from assistant.retrieval import HybridRetriever
from assistant.schema import Answer, AnswerMode


@dataclass
class Result:
    """An answer with what led to it: the evidence in rank order (plus any chunk a citation
    points at) and, for a decline, the reason (see ``assistant.decline``)."""

    answer: Answer
    evidence: list[Document] = field(default_factory=list)
    # "answered", "empty", "too_long", a ``Decision.reason``, or "not_covered" (the LLM said so)
    reason: str = "answered"
    decision: Decision | None = None  # with the answerability features and probability


class Assistant:
    """Question answering over the library; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        index: LibraryIndex,
        retriever: HybridRetriever,
        decline: DeclinePolicy,
        extractive: ExtractiveAnswerer,
        generative: GenerativeAnswerer | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.retriever = retriever
        self.decline = decline
        self.extractive = extractive
        self.generative = generative
        self.selector: EvidenceSelector = extractive.selector
        self.mode: AnswerMode = "generative" if generative is not None else "extractive"

    # ------------------------------------------------------------ public API

    def ask(self, question: str, history: History | None = None) -> Answer:
        return self.run(question, history).answer

    def ask_with_evidence(
        self, question: str, history: History | None = None
    ) -> tuple[Answer, list[Document]]:
        result = self.run(question, history)
        return result.answer, result.evidence

    def run(self, question: str, history: History | None = None) -> Result:
        """The answer with its evidence and the decision's reason."""
        result: Result | None = None
        for piece in self._run(question, history, stream=False):
            if isinstance(piece, Result):
                result = piece
        assert result is not None
        return result

    def stream(self, question: str, history: History | None = None) -> Iterator[str | Answer]:
        """Text pieces as they are produced, then the final ``Answer`` (which is authoritative)."""
        for piece in self._run(question, history, stream=True):
            if isinstance(piece, str):
                yield piece
            else:
                yield piece.answer

    def library(self) -> dict[str, Any]:
        """What the served library holds, per document (refreshed by the index's rule)."""
        return self.index.current().stats()

    def chunk_text(self, chunk_id: str) -> str | None:
        doc = self.index.current().chunk(chunk_id)
        return doc.page_content if doc is not None else None

    def health(self) -> dict[str, Any]:
        return self.index.health()

    # ------------------------------------------------------------ pipeline

    def _run(
        self, question: str, history: History | None, *, stream: bool
    ) -> Generator[str | Result, None, None]:
        question = (question or "").strip()
        if not question:
            yield Result(
                Answer(text=messages.EMPTY_QUESTION, declined=True, mode=self.mode, outcome="refusal"),
                reason="empty",
            )
            return
        limit = self.settings.server.max_question_chars
        if len(question) > limit:
            text = messages.question_too_long(len(question), limit)
            answer = Answer(text=text, declined=True, mode=self.mode, outcome="refusal")
            yield Result(answer, reason="too_long")
            return

        library = self.index.current()
        injection = check_injection(question)
        legit = injection.remainder if injection.detected else question
        condensed = (
            self._condense(legit, history, library) if legit else Condensed(query="", original=question)
        )
        analysis = analyse(condensed.original, condensed.ordinal)
        docs = self.retriever.search(condensed.query, library=library) if condensed.query else []
        docs = bridge_evidence(
            analysis,
            docs,
            lambda query: self.retriever.search(query, library=library),
            self.settings.retrieval.k,
            self.settings.retrieval.decline_threshold,
        )
        chosen = self.selector.select(condensed.original, condensed.context, analysis, docs)
        decision = self.decline.decide(library, question, condensed, injection, docs, [c.doc for c in chosen])
        if decision.quotes_related:
            # Not answered directly; the nearest articles are shown as such, with their citations.
            related = chosen[: self.settings.answer.related_blocks]
            answer = self.extractive.answer(library, condensed, analysis, related)
            answer.text = f"{decision.text}\n{answer.text}"
            answer.declined, answer.outcome = True, "related"
            if stream:
                yield from _pieces(answer.text)
            yield Result(answer, _with_cited(library, docs, answer), decision.reason, decision)
            return
        if decision.declines:
            answer = Answer(text=decision.text, declined=True, mode=self.mode, outcome="refusal")
            if stream:
                yield answer.text
            yield Result(answer, docs, decision.reason, decision)
            return

        prefix = messages.INJECTION_PREFIX if injection.detected else ""
        # Source text the question claims (in quotation marks) that the library does not hold.
        claims = "" if injection.detected else self.decline.claimed_quote_note(library, legit)
        if claims:
            prefix = claims + "\n"
        if stream and prefix:
            yield prefix
        answer = yield from self._answer(library, condensed, analysis, docs, chosen, stream=stream)
        if claims:
            answer.notices.insert(0, claims)
        answer.text = prefix + answer.text
        if injection.detected:
            # The manipulation was refused; only the legitimate part was answered from the sources.
            answer.notices.insert(0, messages.INJECTION_NOTICE)
            answer.declined = True
        if answer.declined:
            answer.outcome = "refusal"
        yield Result(
            answer,
            _with_cited(library, docs, answer),
            "injection" if injection.detected else "answered",
            decision,
        )

    def _answer(
        self,
        library: Library,
        condensed: Condensed,
        analysis: Analysis,
        docs: list[Document],
        chosen: list[Candidate],
        *,
        stream: bool,
    ) -> Generator[str, None, Answer]:
        """The generative answer, or the extractive one (also when the generative one falls back)."""
        if self.generative is not None:
            outcome = yield from self.generative.generate(library, condensed, docs, stream=stream)
            if isinstance(outcome, Answer):
                return outcome
            answer = self.extractive.answer(library, condensed, analysis, chosen)
            answer.mode = "generative→extractive"
            answer.notices.insert(0, outcome.reason)
            answer.text = f"{messages.fallback_note(outcome.reason)}\n{answer.text}"
            return answer
        answer = self.extractive.answer(library, condensed, analysis, chosen)
        if stream:
            yield from _pieces(answer.text)
        return answer

    def _condense(self, question: str, history: History | None, library: Library) -> Condensed:
        chars = self.settings.answer.context_chars
        if history and self.generative is not None:
            from assistant.llm import condense_with_llm

            return condense_with_llm(
                self.generative.chat_model,
                question,
                history,
                turns=self.settings.llm.condense_turns,
                context_chars=chars,
                titles=library.titles,
            )
        return condense(question, history, chars, library.titles)


def _with_cited(library: Library, docs: list[Document], answer: Answer) -> list[Document]:
    """The retrieved chunks in rank order, followed by any other chunk a citation points at."""
    have = {chunk_id(d) for d in docs}
    out = list(docs)
    for cid in dict.fromkeys(c.chunk_id for c in answer.citations if c.chunk_id not in have):
        doc = library.chunk(cid)
        if doc is not None:
            out.append(doc)
    return out


def _pieces(text: str) -> Iterator[str]:
    """Split an answer into sentence-sized pieces for streaming (joined they give ``text``)."""
    for piece in re.findall(r"[^。！？\n]*(?:[。！？]」?|\n)|[^。！？\n]+$", text):
        if piece:
            yield piece
