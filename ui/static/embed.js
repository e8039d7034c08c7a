// Compact chat for the /embed iframe. Everything coming from the server is
// inserted with textContent / createTextNode, never as HTML.
(() => {
  "use strict";
  const root = document.getElementById("pa-embed");
  const log = document.getElementById("pa-log");
  const form = document.getElementById("pa-form");
  const input = document.getElementById("pa-input");
  const send = document.getElementById("pa-send");
  const maxChars = parseInt(root.dataset.maxChars, 10) || 500;
  const BADGE = {
    "已废止": "pa-badge pa-badge-repealed",
    "已修正": "pa-badge pa-badge-amended",
    "现行": "pa-badge pa-badge-current",
  };
  let history = [];

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function addMsg(cls, text) {
    const node = el("div", "pa-msg " + cls, text);
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
    return node;
  }

  const squeeze = (text) => text.replace(/\n[ \t\u3000]*(?:\n[ \t\u3000]*)+/g, "\n");

  // The article as text nodes with every quote (first occurrence) inside <mark>.
  function markInto(parent, article, quotes) {
    const spans = [];
    for (const q of quotes) {
      const pos = q ? article.indexOf(q) : -1;
      if (pos >= 0 && spans.every(([s, e]) => pos >= e || pos + q.length <= s)) spans.push([pos, pos + q.length]);
    }
    spans.sort((a, b) => a[0] - b[0]);
    let last = 0;
    for (const [s, e] of spans) {
      parent.appendChild(document.createTextNode(squeeze(article.slice(last, s))));
      parent.appendChild(el("mark", "", article.slice(s, e)));
      last = e;
    }
    parent.appendChild(document.createTextNode(squeeze(article.slice(last))));
  }

  // One footnote per cited article piece (chunk); numbers[i] is citation i's footnote.
  function footnotes(citations) {
    const groups = [], index = new Map(), numbers = [];
    for (const c of citations) {
      const key = c.chunk_id || c.file + ":" + c.start;
      if (!index.has(key)) { index.set(key, groups.length); groups.push([]); }
      groups[index.get(key)].push(c);
      numbers.push(index.get(key) + 1);
    }
    return { groups, numbers };
  }

  function renderCitation(n, group) {
    const c = group[0];
    const item = el("div", "pa-cite");
    item.appendChild(el("span", "pa-num", "[" + n + "]"));
    item.appendChild(el("span", "pa-source", "《" + (c.title || c.file) + "》" + (c.article ? " " + c.article : "")));
    if (c.status) item.appendChild(el("span", BADGE[c.status] || "pa-badge", c.status));
    const quote = el("div", "pa-quote");
    quote.appendChild(el("mark", "", c.quote));
    if (group.length > 1) quote.appendChild(el("span", "pa-more", "（共引用 " + group.length + " 处）"));
    item.appendChild(quote);
    const details = el("details");
    details.appendChild(el("summary", "", "展开" + (c.article || "") + "全文"));
    const body = el("div", "pa-article", "正在读取……");
    details.appendChild(body);
    details.addEventListener("toggle", async () => {
      if (!details.open || body.dataset.loaded) return;
      body.dataset.loaded = "1";
      try {
        const r = await fetch("/api/chunks/" + encodeURIComponent(c.chunk_id));
        if (!r.ok) throw new Error(String(r.status));
        const data = await r.json();
        body.textContent = "";
        markInto(body, data.text, group.map((g) => g.quote));
      } catch (e) {
        body.textContent = "原文暂时无法读取。";
      }
    });
    item.appendChild(details);
    return item;
  }

  function renderRating(bubble, question, final) {
    const bar = el("div", "pa-rate");
    const up = el("button", "", "有帮助");
    const down = el("button", "", "没帮助");
    up.type = down.type = "button";
    bar.appendChild(up);
    bar.appendChild(down);
    const rate = async (rating) => {
      up.disabled = down.disabled = true;
      try {
        const r = await fetch("/api/feedback", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ question, answer: final.text, citations: final.citations.slice(0, 20), rating }),
        });
        if (!r.ok) throw new Error(String(r.status));
        const { id, token } = await r.json(); // token: needed to add the comment to this row
        bar.textContent = "已记录，谢谢！";
        const note = el("input");
        note.placeholder = "补充意见（可选）";
        note.maxLength = 2000;
        const ok = el("button", "", "提交");
        ok.type = "button";
        ok.addEventListener("click", async () => {
          ok.disabled = true;
          const rr = await fetch("/api/feedback/" + id + "/comment", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ comment: note.value, token }),
          });
          bar.textContent = rr.ok ? "意见已保存，谢谢！" : "意见保存失败。";
        });
        bar.appendChild(note);
        bar.appendChild(ok);
      } catch (e) {
        bar.textContent = "评价提交失败。";
      }
    };
    up.addEventListener("click", () => rate(1));
    down.addEventListener("click", () => rate(-1));
    bubble.appendChild(bar);
  }

  // Answer text with a footnote marker [n] after each cited quote (text nodes only).
  // A run of consecutive quotes from one footnote gets a single marker after its last quote.
  function annotate(parent, text, citations, numbers) {
    const seen = new Set(), entries = [];
    citations.forEach((c, i) => {
      const pos = c.quote ? text.indexOf(c.quote) : -1;
      if (pos < 0) return;
      let end = pos + c.quote.length;
      if (text[end] === "」") end += 1;
      const key = end + ":" + numbers[i];
      if (!seen.has(key)) { seen.add(key); entries.push([end, numbers[i]]); }
    });
    entries.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const kept = entries.filter((e, i) => i + 1 === entries.length || entries[i + 1][1] !== e[1]);
    let last = 0;
    for (const [end, n] of kept) {
      parent.appendChild(document.createTextNode(text.slice(last, end)));
      parent.appendChild(el("sup", "pa-ref", "[" + n + "]"));
      last = end;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function finish(bubble, question, final) {
    bubble.textContent = "";
    for (const notice of final.notices || []) {
      if (!final.text.includes(notice)) bubble.appendChild(el("div", "pa-notice", "⚠ " + notice));
    }
    const body = el("div", "pa-text" + (final.declined ? " pa-declined" : ""));
    const { groups, numbers } = footnotes(final.citations || []);
    annotate(body, final.text, final.citations || [], numbers);
    bubble.appendChild(body);
    if (groups.length) {
      const box = el("div", "pa-cites");
      box.appendChild(el("div", "pa-cites-title", "引用依据"));
      groups.forEach((group, i) => box.appendChild(renderCitation(i + 1, group)));
      bubble.appendChild(box);
    }
    renderRating(bubble, question, final);
    log.scrollTop = log.scrollHeight;
  }

  async function ask(question) {
    addMsg("pa-user", question);
    const bubble = addMsg("pa-bot", "……");
    const messages = history.concat([{ role: "user", content: question }]);
    let resp;
    try {
      resp = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ messages, stream: true }),
      });
    } catch (e) {
      bubble.classList.add("pa-error");
      bubble.textContent = "无法连接到服务，请稍后再试。";
      return;
    }
    if (!resp.ok) {
      let detail = "请求失败（" + resp.status + "）";
      try { const d = await resp.json(); if (typeof d.detail === "string") detail = d.detail; } catch (e) { /* keep */ }
      bubble.classList.add("pa-error");
      bubble.textContent = detail;
      return;
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "", text = "", final = null, done = false;
    while (!done) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buf += decoder.decode(chunk.value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") { done = true; break; }
          const obj = JSON.parse(data);
          const delta = (obj.choices && obj.choices[0] && obj.choices[0].delta) || {};
          if (delta.content) { text += delta.content; bubble.textContent = text; log.scrollTop = log.scrollHeight; }
          if (obj.policy_answer) final = { ...obj.policy_answer, citations: obj.citations || [] };
        }
      }
    }
    if (!final) final = { text: text || "（没有收到回答）", citations: [], notices: [], declined: true };
    finish(bubble, question, final);
    history = messages.concat([{ role: "assistant", content: final.text }]);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    if (q.length > maxChars) { addMsg("pa-bot pa-error", "问题太长了：最多 " + maxChars + " 个字，请精简后再问。"); return; }
    input.value = "";
    send.disabled = true;
    try { await ask(q); } finally { send.disabled = false; input.focus(); }
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); form.requestSubmit(); }
  });
  document.getElementById("pa-clear").addEventListener("click", () => {
    history = [];
    log.textContent = "";
    log.appendChild(el("p", "pa-hint", "对话已清空。"));
  });
})();
