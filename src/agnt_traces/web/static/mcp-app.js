// MCP App view (io.modelcontextprotocol/ui): draws the tool result the host posts, with text nodes only.
"use strict";
(() => {
  const main = document.getElementById("main");
  let nextId = 1;
  const send = (msg) => window.parent.postMessage({ jsonrpc: "2.0", ...msg }, "*");
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  };
  const drawDiff = (data) => {
    main.replaceChildren(el("h1", "", data.sessionId ? `Session ${data.sessionId}` : `Trace ${data.traceId} against the prompt now`));
    for (const m of data.models || []) {
      main.append(el("p", "deltas", `${m.model} ${m.status} · Δ tokens ${m.deltas.totalTokens ?? "—"} · Δ cost ${m.deltas.cost ?? "—"} · Δ latency ${m.deltas.duration ?? "—"} s`));
    }
    const pre = el("pre", "diff");
    for (const line of String(data.unified || "No changes.").split("\n")) {
      const cls = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "";
      pre.append(el("span", `line ${cls}`, line + "\n"));
    }
    main.append(pre);
  };
  const drawTrace = (t) => {
    main.replaceChildren(el("h1", "", `${t.promptName || "Trace"} ${t.promptVersion ? "v" + t.promptVersion : ""} · ${t.status}`));
    main.append(el("p", "muted", `${t.model?.provider}/${t.model?.name} · ${t.totalTokens} tokens · $${t.cost ?? "—"} · ${t.duration} s`));
    if (t.error) main.append(el("p", "notice error", `${t.error.type}: ${t.error.message}`));
    const list = el("ol", "conversation");
    if (t.manifest?.system) list.append(el("li", "msg system", t.manifest.system));
    for (const m of t.messages || []) list.append(el("li", `msg ${m.role}`, typeof m.content === "string" ? m.content : JSON.stringify(m.content)));
    list.append(el("li", "msg assistant output", t.output ?? "no output"));
    main.append(list);
  };
  window.addEventListener("message", (event) => {
    const msg = event.data;
    if (!msg || msg.jsonrpc !== "2.0") return;
    if (msg.id === 1 && "result" in msg) send({ method: "ui/notifications/initialized", params: {} });
    if (msg.method === "ui/notifications/tool-result") {
      const data = msg.params?.structuredContent;
      if (!data || data.error) { main.replaceChildren(el("p", "notice error", data?.error?.message || "no result")); return; }
      if ("unified" in data) drawDiff(data); else drawTrace(data);
    }
  });
  send({ id: nextId++, method: "ui/initialize", params: { protocolVersion: "2026-01-26", appInfo: { name: "agnt-traces", version: "1" }, appCapabilities: {} } });
})();
