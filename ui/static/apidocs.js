// Renders /openapi.json as a plain list; all text goes in through textContent.
(() => {
  "use strict";
  const box = document.getElementById("ops");
  const el = (tag, cls, text) => {
    const n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text !== undefined) n.textContent = text;
    return n;
  };
  const refName = (schema) => {
    if (!schema) return "";
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.type === "array") return refName(schema.items) + "[]";
    return schema.type || "";
  };
  fetch("/openapi.json").then((r) => r.json()).then((spec) => {
    box.textContent = "";
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const [method, op] of Object.entries(item)) {
        const div = el("div", "op");
        const head = el("div");
        head.appendChild(el("span", "method", method.toUpperCase()));
        head.appendChild(el("code", "", path));
        head.appendChild(document.createTextNode("　" + (op.summary || "")));
        div.appendChild(head);
        const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
        if (body) div.appendChild(el("div", "muted", "请求体：" + refName(body.schema)));
        const ok = op.responses && op.responses["200"];
        const okBody = ok && ok.content && ok.content["application/json"];
        if (okBody && refName(okBody.schema)) div.appendChild(el("div", "muted", "返回：" + refName(okBody.schema)));
        box.appendChild(div);
      }
    }
    const schemas = (spec.components && spec.components.schemas) || {};
    box.appendChild(el("h2", "", "数据结构"));
    for (const [name, schema] of Object.entries(schemas)) {
      const div = el("div", "op");
      div.appendChild(el("strong", "", name));
      const table = el("table");
      for (const [field, prop] of Object.entries(schema.properties || {})) {
        const tr = el("tr");
        tr.appendChild(el("td", "", field));
        tr.appendChild(el("td", "", refName(prop) || (prop.anyOf ? prop.anyOf.map(refName).join(" | ") : "")));
        tr.appendChild(el("td", "muted", prop.description || ""));
        table.appendChild(tr);
      }
      div.appendChild(table);
      box.appendChild(div);
    }
  }).catch(() => { box.textContent = "无法读取 /openapi.json。"; });
})();
