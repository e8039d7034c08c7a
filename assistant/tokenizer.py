"""The one tokenizer: jieba with the domain dictionary (``corpus/userdict.txt``).

A private ``jieba.Tokenizer`` (the global one is left alone), loaded on first use.
Two views of the same segmentation:

* ``tokenize(text)``: BM25 tokens (jieba words, lower-cased, stop words, punctuation
  and words shorter than ``min_len`` removed);
* ``terms(text)``: content terms for sentence scoring and term weights (jieba's search
  mode, which also yields the words inside long compounds; CJK only, question words removed).
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

from assistant.text import CJK_RE

logger = logging.getLogger(__name__)

# Function words and question words that carry no retrieval signal.
STOP_WORDS: frozenset[str] = frozenset(
    """
    的 了 是 在 和 与 或 及 等 对 把 被 就 也 都 而 又 有 这 那 这个 那个 这些 那些 个 吗 呢 吧 啊 么 嘛
    什么 怎么 怎么样 怎样 如何 哪些 哪个 哪 多少 几 是否 是不是 能不能 会不会 要不要 有没有
    会 能 能够 要 可以 可 应 应当 应该 该 中 上 下 里 为 以 之 其 于 从 向 给 让 由 将 还 再 又 但 但是
    我 你 他 她 它 我们 你们 他们 咱们 自己 大家 人家 谁
    请问 请 一下 一个 一些 有些 这种 那种 时候 情况 问题 规定 讲 说 讲话 里面 具体 分别 一般 现在
    ， 。 、 ？ ！ ： ； “ ” ‘ ’ （ ） 《 》 〈 〉 【 】 … — · ～
    """.split()
)
# Words of a question that say how it asks, not what about: left out of content terms.
QUESTION_WORDS: frozenset[str] = frozenset(
    "讲话 什么 哪些 怎么 怎样 如何 是否 可以 能不能 规定 要求 分别 还有 的话 是不是 会不会 多少 一个 这个 那个 "
    "里面 说 提出 为什么 为啥 有没有 情况 问题 按照 根据 关于 一下 具体 应该 应当 需要 现在 时候 我们 他们 你们 "
    "自己 一般 这些 那些 或者 以及 这种 那种 知道 请问 告诉 部分 又是 是什么 什么样 哪个 哪里 吗 呢 了 的 "
    "资料 资料库 文件 原文".split()
)
_PUNCT_RE = re.compile(r"^[\W_]+$")


class DomainTokenizer:
    """jieba with the domain dictionary, in a private ``jieba.Tokenizer`` loaded on first use."""

    def __init__(self, dictionary: Path | None, min_len: int = 2) -> None:
        self.dictionary = dictionary
        self.min_len = min_len
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def _ensure(self) -> Any:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    import jieba

                    logging.getLogger("jieba").setLevel(logging.WARNING)
                    tok = jieba.Tokenizer()
                    if self.dictionary is not None and Path(self.dictionary).is_file():
                        tok.load_userdict(str(self.dictionary))
                    else:
                        tok.initialize()
                        logger.warning("领域词典不存在：%s（仅用 jieba 默认词典分词）", self.dictionary)
                    self._tokenizer = tok
        return self._tokenizer

    def warm_up(self) -> None:
        """Load the dictionaries now rather than during the first question (~1 s)."""
        self._ensure()

    def tokenize(self, text: str) -> list[str]:
        """BM25 tokens: jieba words minus stop words and punctuation, lower-cased."""
        out: list[str] = []
        for word in self._ensure().lcut(text):
            w = word.strip().lower()
            if len(w) < self.min_len or w in STOP_WORDS or _PUNCT_RE.match(w):
                continue
            out.append(w)
        return out

    def terms(self, text: str) -> list[str]:
        """Content terms (search mode, CJK only, question words removed), in order, with repeats."""
        out: list[str] = []
        for tok in self._ensure().lcut_for_search(text):
            tok = tok.strip()
            if len(tok) < 2 or tok in QUESTION_WORDS or not CJK_RE.search(tok):
                continue
            out.append(tok)
        return out
