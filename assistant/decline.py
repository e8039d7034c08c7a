"""The decline policy: when the assistant says the library does not answer a question.

In order, the first that applies:

1. ``injection``: the question asks to invent or pass off rule text, or is nothing but
   manipulation → refusal (claimed quotes the library lacks are pointed out);
2. ``missing``: the question asks about a document the catalogue lists as not held, or
   about a version of a held text that the library does not hold (2018年版 when only the
   2023 text is held: ``assistant.versions.unheld_version``);
   ``no_article``: it names an article its document does not have (第七十条 of a law with
   68), answered with the document's real range;
3. ``weak``: the best dense cosine of the top ``retrieval.k`` chunks is below
   ``retrieval.decline_threshold``;
4. with a fitted answerability model (``assistant.answerability``): ``related`` when its
   probability is below the model's threshold: the library does not answer the question
   directly, and the answer says so and quotes the related articles (a decline with
   citations); ``weak`` instead when nothing retrieved is related;
5. without one, ``unsupported``: the question asks for an amount, share, head count,
   period or article number that the chosen evidence does not state (``assistant.facts``).
6. in both cases, ``unsupported`` for an article number of a document that none of the
   evidence comes from.

Every decline names the nearest library documents, so the reader knows where to look.
Every decision carries the answerability features and probability (for the admin's
命中测试 and for ``policy-assistant calibrate``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from langchain_core.documents import Document

from assistant import answerability, facts, messages, named_terms
from assistant.catalogue import MissingDocument, find_missing_document
from assistant.config import Settings
from assistant.conversation import Condensed
from assistant.evidence import top_score
from assistant.injection import InjectionCheck
from assistant.library import Library
from assistant.linear import LinearModel
from assistant.question import claimed_quotes, named_documents, question_parts
from assistant.references import match_titles, mentioned_titles
from assistant.rerank import term_weights
from assistant.text import ENUM_ITEM_RE
from assistant.versions import unheld_version


@dataclass
class Decision:
    """Whether (and why not) the assistant answers from the evidence."""

    # "answer" | "injection" | "missing" | "no_article" | "no_item" | "weak" | "unsupported" | "related"
    reason: str
    text: str = ""
    features: dict[str, float] = field(default_factory=dict)
    probability: float | None = None  # answerability, when a model is fitted

    @property
    def quotes_related(self) -> bool:
        """A decline that still quotes the nearest articles (the "related only" outcome)."""
        return self.reason in ("related", "no_item")

    @property
    def declines(self) -> bool:
        return self.reason != "answer"


class DeclinePolicy:
    """Decides, before answering, whether to decline (see the module docstring)."""

    def __init__(
        self, settings: Settings, missing: list[MissingDocument], model: LinearModel | None = None
    ) -> None:
        self.settings = settings
        self.missing = missing
        self.model = model

    def decide(
        self,
        library: Library,
        question: str,
        condensed: Condensed,
        injection: InjectionCheck,
        docs: list[Document],
        evidence: Sequence[Document],
    ) -> Decision:
        """The decision for one question. ``evidence``: the chunks that would be quoted."""
        k = self.settings.retrieval.k
        nearest = messages.nearest_titles(
            (str(d.metadata.get("title") or "") for d in docs[:k]), self.settings.answer.nearest_titles
        )

        def held() -> Iterator[tuple[str, set[str]]]:
            return ((info.title, info.version_years) for info in library.docs.values())

        if injection.fabricate or (injection.detected and not injection.remainder):
            text = messages.INJECTION_TEXT + self.claimed_quote_note(library, question)
            missing = find_missing_document(question, self.missing, held())
            if missing is not None:
                text += messages.missing_in_injection(missing.display)
            return Decision("injection", text + nearest)

        missing = find_missing_document(condensed.query, self.missing, held())
        if missing is not None:
            return Decision("missing", messages.missing_document(missing.display, missing.note, nearest))
        unheld = unheld_version(library, condensed.query)
        if unheld is not None:
            return Decision("missing", messages.unheld_version(*unheld, nearest))
        absent = nonexistent_article(library, question)
        if absent is not None:
            return absent
        threshold = self.settings.retrieval.decline_threshold
        if not docs or max(top_score(d) for d in docs[:k]) < threshold:
            return Decision("weak", f"{messages.DECLINE_TEXT}{nearest}")

        original = condensed.original
        row = answerability.features(
            answerability.Inputs(
                library,
                original,
                answerability.question_weights(library, original),
                docs,
                evidence,
                bool(condensed.context),
                self.settings.answer.relevant_share,
                k,
            )
        )
        named = dict(zip(answerability.FEATURES, row, strict=True))
        if "article_no" in facts.asked_kinds(original) and self._names_unknown_document(
            library, original, evidence
        ):
            what = facts.KIND_NAMES["article_no"]
            return Decision("unsupported", messages.unsupported_facts(what, nearest), named)
        # "Which six are the 六有六不?": the retrieved chunks name the term but none lists its items.
        asked = named_terms.asked_term(original)
        pool = [d.page_content for d in [*docs[:k], *evidence]]
        if asked is not None and not named_terms.spelled_out(asked, pool):
            return Decision("related", messages.named_only(asked.term, asked.count), named)
        if self.model is not None:
            import numpy as np

            probability = float(self.model.probabilities(np.asarray([row]))[0])
            if probability < self.model.threshold:
                # Kinds missing from the sentences that bear on the question: absent from all the
                # evidence ("没有关于…"), or stated where it is not clear they apply (the quoted
                # article holds a period, but for another case or in other words).
                lacking = self._missing_kinds(library, original, evidence)
                nowhere = self._missing_kinds(library, original, evidence, anywhere=True)
                what = "、".join(facts.KIND_NAMES[k] for k in lacking if k in nowhere)
                unsure = "、".join(facts.KIND_NAMES[k] for k in lacking if k not in nowhere)
                return Decision("related", messages.related_only(what, unsure), named, probability)
            return Decision("answer", "", named, probability)

        kinds = self._missing_kinds(library, original, evidence)
        if kinds:
            what = "、".join(facts.KIND_NAMES[k] for k in kinds)
            return Decision("unsupported", messages.unsupported_facts(what, nearest), named)
        return Decision("answer", "", named)

    def _missing_kinds(
        self, library: Library, question: str, evidence: Sequence[Document], anywhere: bool = False
    ) -> list[str]:
        """Kinds asked for that no evidence sentence bearing on the question states (``anywhere``:
        that no evidence chunk states at all)."""
        return facts.unsupported_kinds(
            question,
            [d.page_content for d in evidence],
            [str(d.metadata.get("article") or "") for d in evidence],
            weights=None if anywhere else self.term_weights(library, question),
            relevant_share=self.settings.answer.relevant_share,
        )

    def term_weights(self, library: Library, question: str) -> dict[str, float]:
        """The content words of the sub-question that asks for a figure (the whole question when
        that part says little of its own), weighted by their IDF in the library. The asking words
        themselves (多长时间 …) and words the library lacks are left out."""

        def weigh(text: str) -> dict[str, float]:
            return term_weights(library, facts.strip_kind_words(text))

        asking = [p for p in question_parts(question) if facts.asked_kinds(p)]
        if asking:
            weights = weigh(asking[0])
            if len(weights) >= self.settings.answer.min_asking_terms:
                return weights
        return weigh(question)

    @staticmethod
    def _names_unknown_document(library: Library, question: str, evidence: Sequence[Document]) -> bool:
        """The question names a document (《X》, or “X”里/中) that none of the evidence comes from
        and that is no library title: the evidence's article numbers do not answer it."""
        titles = library.title_list()
        evidence_titles = {str(d.metadata.get("title") or "") for d in evidence}
        for name in named_documents(question):
            known = match_titles(name, titles) or mentioned_titles(name, titles)
            if not known or not evidence_titles & set(known):
                return True
        return False

    @staticmethod
    def claimed_quote_note(library: Library, question: str) -> str:
        """Point out claimed source text (“…” in the question) that the library does not contain."""
        if not len(library):
            return ""
        return "".join(
            messages.claim_not_found(claim)
            for claim in claimed_quotes(question)
            if not library.contains_quote(claim)
        )


def nonexistent_article(library: Library, question: str) -> Decision | None:
    """A decline when an article named with its document ("公务员法第一百二十条") exists in no held
    version of it (``no_article``, with the range it does have), or an item named after an
    article ("第六十二条第七项") is not among its items (``no_item``, quoting the article).
    None otherwise, and None when another article the question names does exist."""
    from assistant.references import parse_references
    from assistant.text import article_number, parse_numeral

    statement: Decision | None = None
    for ref in parse_references(question):
        if not ref.doc_hint:
            return None
        files = [f for t in match_titles(ref.doc_hint, library.titles) for f in library.titles[t]]
        if ref.year:
            files = [f for f in files if library.docs[f].year == ref.year] or files
        numbered = [f for f in files if library.docs[f].articles]
        if not numbered:
            return None
        having = [f for f in numbered if ref.article in library.docs[f].articles]
        if having:
            item = _ITEM_AFTER.match(question, ref.end)
            count = _item_count(library, having[0], ref.article)
            number = parse_numeral(item.group(1)) if item else None
            if number is None or number <= count:
                return None
            title = library.docs[having[0]].title
            text = messages.no_such_item(title, ref.article, item.group(0) if item else "", count)
            return Decision("no_item", text)
        if statement is None:
            info = library.docs[numbered[0]]
            numbers = [n for n in map(article_number, info.articles) if n is not None]
            statement = Decision("no_article", messages.no_such_article(info.title, max(numbers)))
    return statement


# "第六十二条第七项" / "第六十二条的第（七）项": an item named right after an article.
_ITEM_AFTER = re.compile(r"\s*(?:的)?\s*第[（(]?([一二三四五六七八九十]+|\d+)[）)]?项")


def _item_count(library: Library, file: str, label: str) -> int:
    """How many enumerated items （一）（二）… the article has (0: none)."""
    positions = library.docs[file].articles.get(label, [])
    text = "\n".join(library.chunks[i].page_content for i in positions)
    return sum(1 for line in text.splitlines() if ENUM_ITEM_RE.match(line.strip()))
