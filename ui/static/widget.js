// Floating "政策问答" button that opens the assistant in an iframe.
// Usage: <script src="https://assistant.example/widget.js" defer></script>
// Optional attributes: data-label="政策问答" data-position="right|left".
// Contains no secrets; the host page must be on the server's allow-list or
// the browser refuses to show the iframe (CSP frame-ancestors).
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.__policyAssistantWidget) return;
  window.__policyAssistantWidget = true;
  const origin = new URL(script.src, document.baseURI).origin;
  const label = script.getAttribute("data-label") || "政策问答";
  const side = script.getAttribute("data-position") === "left" ? "left" : "right";

  const button = document.createElement("button");
  button.type = "button";
  button.id = "policy-assistant-button";
  button.textContent = label;
  button.setAttribute("aria-expanded", "false");
  Object.assign(button.style, {
    position: "fixed", bottom: "20px", [side]: "20px", zIndex: "2147483000",
    padding: "10px 16px", borderRadius: "22px", border: "none", cursor: "pointer",
    background: "#1d4ed8", color: "#fff", fontSize: "15px", boxShadow: "0 2px 8px rgba(0,0,0,.25)",
  });

  let frame = null;
  button.addEventListener("click", () => {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.id = "policy-assistant-frame";
      frame.title = "政策问答助手";
      frame.src = origin + "/embed";
      frame.setAttribute("referrerpolicy", "strict-origin");
      Object.assign(frame.style, {
        position: "fixed", bottom: "72px", [side]: "20px", zIndex: "2147483000",
        width: "380px", height: "560px", maxWidth: "calc(100vw - 40px)", maxHeight: "calc(100vh - 100px)",
        border: "1px solid #d1d5db", borderRadius: "10px", background: "#fff", boxShadow: "0 4px 16px rgba(0,0,0,.2)",
      });
      document.body.appendChild(frame);
      button.setAttribute("aria-expanded", "true");
      return;
    }
    const hidden = frame.style.display === "none";
    frame.style.display = hidden ? "block" : "none";
    button.setAttribute("aria-expanded", hidden ? "true" : "false");
  });
  document.body.appendChild(button);
})();
