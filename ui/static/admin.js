// The admin console: plain DOM, every value shown with textContent (never as HTML).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  };
  const row = (cells) => {
    const tr = document.createElement("tr");
    cells.forEach((c) => {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c);
      tr.appendChild(td);
    });
    return tr;
  };
  const button = (label, onClick, id) => {
    const b = el("button", label);
    b.type = "button";
    if (id) b.id = id;
    b.addEventListener("click", onClick);
    return b;
  };
  async function api(path, options) {
    const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : "请求失败（" + resp.status + "）";
      throw new Error(detail);
    }
    return body;
  }
  const postJSON = (path, data) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data || {}) });
  const say = (node, text, ok) => { node.textContent = text; node.className = "pa-msg " + (ok ? "pa-ok" : "pa-error"); };

  // ---- tabs
  document.querySelectorAll(".pa-tabs button").forEach((b) => b.addEventListener("click", () => {
    document.querySelectorAll(".pa-tabs button").forEach((x) => x.classList.toggle("active", x === b));
    document.querySelectorAll(".pa-tab").forEach((s) => { s.hidden = s.id !== "tab-" + b.dataset.tab; });
    const load = { docs: loadDocs, feedback: loadFeedback, assoc: loadAssoc, audit: loadAudit }[b.dataset.tab];
    if (load) load();
  }));

  // ---- documents and ingest progress
  let polling = null;
  let maxBytes = 0;
  let servedFiles = [];
  function showIngest(s) {
    const node = $("pa-ingest");
    if (!s) { node.textContent = "—"; return; }
    const names = { idle: "尚未导入", running: "正在导入", done: "导入完成", failed: "导入失败" };
    let text = names[s.state] || s.state;
    if (s.state === "running") text += s.total ? "：已嵌入 " + s.done + " / " + s.total : "：正在读取和比对文件…";
    if (s.queued) text += "（完成后将再导入一次）";
    if (s.state === "done" && s.report) text = s.report.summary || text;
    if (s.state === "failed") text += "：" + s.error + "（原资料库继续服务）";
    node.textContent = text;
    node.dataset.state = s.state;
    node.dataset.runs = String(s.runs);
    if (s.state === "running" && !polling) polling = setTimeout(pollIngest, 1000);
  }
  async function pollIngest() {
    polling = null;
    try {
      const s = await api("/api/admin/reindex");
      showIngest(s);
      if (s.state !== "running") loadDocs();
    } catch (e) { $("pa-ingest").textContent = e.message; }
  }
  async function loadDocs() {
    let data;
    try { data = await api("/api/admin/documents"); } catch (e) { say($("pa-upload-msg"), e.message, false); return; }
    maxBytes = data.max_bytes;
    $("pa-max-mb").textContent = (data.max_bytes / 1e6).toFixed(1);
    const body = $("pa-docs").querySelector("tbody");
    body.replaceChildren();
    const replace = $("pa-replace");
    const keep = replace.value;
    replace.replaceChildren(el("option", "（新文件）"));
    replace.firstChild.value = "";
    servedFiles = data.documents.filter((d) => d.served).map((d) => d.file);
    data.documents.forEach((d) => {
      const actions = el("span");
      if (d.on_disk) {
        actions.appendChild(button("标记已废止", () => change("/api/admin/documents/status", { file: d.file, status: "已废止" })));
        actions.appendChild(button("标记现行", () => change("/api/admin/documents/status", { file: d.file, status: "现行" })));
        actions.appendChild(button("移除", () => { if (confirm("确定从文件库移除 " + d.file + "？")) change("/api/admin/documents/remove", { file: d.file }); }));
        const opt = el("option", d.file); opt.value = d.file; replace.appendChild(opt);
      }
      const tr = row([d.file, d.title, d.status, d.issuer, d.date, d.articles, d.chunks, d.served ? "是" : "否", d.indexed_at || "", d.modified || "", d.problem || "", actions]);
      tr.dataset.file = d.file;
      body.appendChild(tr);
    });
    replace.value = keep;
    showIngest(data.ingest);
  }
  async function change(path, data) {
    try {
      const r = await postJSON(path, data);
      say($("pa-upload-msg"), r.detail + "，正在后台导入…", true);
      showIngest(r.ingest);
      loadDocs();
    } catch (e) { say($("pa-upload-msg"), e.message, false); }
  }
  $("pa-upload").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = $("pa-upload-msg");
    const chosen = $("pa-file").files[0];
    if (chosen && maxBytes && chosen.size > maxBytes) {
      say(msg, "文件太大：上限 " + (maxBytes / 1e6).toFixed(1) + " MB，未上传。请拆分文件后再试。", false);
      return;
    }
    say(msg, "正在上传…", true);
    try {
      const r = await api("/api/admin/documents", { method: "POST", body: new FormData(ev.target) });
      say(msg, r.detail + "，正在后台导入…", true);
      ev.target.reset();
      showIngest(r.ingest);
      loadDocs();
    } catch (e) { say(msg, e.message, false); }
  });
  $("pa-docs-refresh").addEventListener("click", loadDocs);
  $("pa-reindex").addEventListener("click", async () => {
    try { showIngest(await postJSON("/api/admin/reindex", {})); } catch (e) { say($("pa-upload-msg"), e.message, false); }
  });

  // ---- 命中测试
  $("pa-hit-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("pa-hit-result");
    out.replaceChildren(el("p", "正在测试…"));
    let r;
    try { r = await postJSON("/api/admin/retrieval-test", { question: $("pa-hit-q").value }); } catch (e) { out.replaceChildren(el("p", e.message, "pa-error")); return; }
    const decision = el("p", "决定：" + r.decision_label + "（" + r.decision + "）；原因：" + r.reason_label + "（" + r.reason + "）；拒答阈值 " + r.threshold);
    decision.id = "pa-hit-decision";
    const table = el("table"); table.id = "pa-hit-table";
    table.appendChild(row(["名次", "文件", "条文/章节", "融合得分", "稠密得分", "句窗得分", "BM25", "匹配", "原文"]));
    r.hits.forEach((h) => table.appendChild(row([h.rank, h.title + "（" + h.file + "）", h.article || h.heading_path, h.score, h.dense_score, h.view_score, h.bm25_score, h.match, el("div", h.text, "pa-clip")])));
    out.replaceChildren(decision, el("p", "回答：" + r.answer, "pa-clip"), table);
  });

  // ---- feedback review
  function filterQuery() {
    const q = new URLSearchParams();
    [["rating", "pa-fb-rating"], ["since", "pa-fb-since"], ["until", "pa-fb-until"], ["reviewed", "pa-fb-reviewed"]].forEach(([k, id]) => { if ($(id).value) q.set(k, $(id).value.trim()); });
    return q.toString();
  }
  let feedbackLoads = 0;  // only the newest load may render: a late, older reply must not wipe the admin's input
  async function loadFeedback() {
    const seq = ++feedbackLoads;
    const qs = filterQuery();
    $("pa-fb-csv").href = "/api/admin/feedback.csv" + (qs ? "?" + qs : "");
    let data;
    try { data = await api("/api/admin/feedback" + (qs ? "?" + qs : "")); } catch (e) { say($("pa-fb-msg"), e.message, false); return; }
    if (seq !== feedbackLoads) return;
    if (!servedFiles.length) { try { servedFiles = (await api("/api/admin/documents")).documents.filter((d) => d.served).map((d) => d.file); } catch (e) { /* listed below */ } }
    if (seq !== feedbackLoads) return;
    const body = $("pa-fb").querySelector("tbody");
    body.replaceChildren();
    data.rows.forEach((f) => {
      const cites = (f.citations || []).map((c) => "《" + c.title + "》" + (c.article || c.heading_path || "")).join("；");
      const actions = el("div");
      if (!f.reviewed_at) actions.appendChild(button("标记已审阅", async () => { try { await postJSON("/api/admin/feedback/" + f.id + "/reviewed"); loadFeedback(); } catch (e) { say($("pa-fb-msg"), e.message, false); } }));
      const pick = el("select"); pick.className = "pa-assoc-file";
      servedFiles.forEach((name) => { const o = el("option", name); o.value = name; pick.appendChild(o); });
      const first = (f.citations || [])[0];
      if (first) pick.value = first.file;
      const article = el("input"); article.placeholder = "第七条"; article.className = "pa-assoc-article"; article.size = 8;
      if (first) article.value = first.article || "";
      actions.appendChild(el("div", "关联到："));
      actions.appendChild(pick); actions.appendChild(article);
      actions.appendChild(button("关联问题", async () => {
        try {
          await postJSON("/api/admin/feedback/" + f.id + "/associate", { file: pick.value, article: article.value.trim() });
          await loadFeedback();  // refreshes the list (and its message line) first
          say($("pa-fb-msg"), "已把问题关联到《" + pick.value + "》" + article.value + "，正在后台导入…", true);
        } catch (e) { say($("pa-fb-msg"), e.message, false); }
      }));
      const tr = row([f.id, f.time, f.user, f.rating > 0 ? "👍" : "👎", f.question, el("div", f.answer, "pa-clip"), cites, f.comment, f.reviewed_at ? f.reviewed_by + " " + f.reviewed_at : "未审阅", actions]);
      tr.dataset.id = f.id;
      body.appendChild(tr);
    });
    if (!data.rows.length) say($("pa-fb-msg"), "没有符合条件的反馈。", true); else $("pa-fb-msg").textContent = "";
  }
  $("pa-fb-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadFeedback(); });

  // ---- associated questions and audit log
  async function loadAssoc() {
    const body = $("pa-assoc").querySelector("tbody");
    let data;
    try { data = await api("/api/admin/associated"); } catch (e) { body.replaceChildren(row([e.message])); return; }
    body.replaceChildren();
    data.rows.forEach((q) => {
      const act = q.source === "admin" ? button("删除", async () => { try { await postJSON("/api/admin/associated/" + q.id + "/remove"); loadAssoc(); } catch (e) { alert(e.message); } }) : el("span", "（精选，见 corpus/associated_questions.toml）");
      body.appendChild(row([q.id || "", q.question, q.file, q.article || q.heading, q.source === "admin" ? "管理员" : "精选", q.user, q.time, act]));
    });
    if (data.generated) {
      body.appendChild(row(["", "另有 " + data.generated + " 个按条文生成的关联问题（不在此列出）", data.generated_folder, "", "生成", "", "", ""]));
    }
  }
  async function loadAudit() {
    const body = $("pa-audit").querySelector("tbody");
    let data;
    try { data = await api("/api/admin/audit"); } catch (e) { body.replaceChildren(row([e.message])); return; }
    body.replaceChildren();
    data.rows.forEach((a) => body.appendChild(row([a.time, a.user, a.ip, a.action, a.detail])));
  }

  loadDocs();
})();
