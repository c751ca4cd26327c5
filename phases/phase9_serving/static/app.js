// mini-nanochat's chat page. The conversation lives in `messages` ({role, content} objects, the
// OpenAI format) and is drawn from it; a reply streams from POST /v1/chat/completions as
// server-sent events, read with a streaming UTF-8 decoder (a network chunk may end inside a
// character). Model text is Markdown rendered by marked with raw HTML turned into plain text,
// then sanitised by DOMPurify: a reply that contains <script> shows it, never runs it.
// Calculator calls arrive as <<expr=result>> and are drawn as their own element.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { messages: [], controller: null, model: null, key: localStorage.getItem("mnc-key") || "" };

// -- Markdown, safely --------------------------------------------------------------------------
const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
  '"': "&quot;", "'": "&#39;" }[c]));

marked.use({
  gfm: true,
  breaks: true,
  renderer: { html: (token) => escapeHtml(token.text || token.raw || "") },   // raw HTML is text
  extensions: [{
    name: "calc", level: "inline",
    start: (src) => { const i = src.indexOf("<<"); return i < 0 ? undefined : i; },
    tokenizer(src) {
      const m = /^<<([^<>]*?)>>/.exec(src);
      if (!m) return undefined;
      const cut = m[1].lastIndexOf("=");
      return { type: "calc", raw: m[0], expr: cut < 0 ? m[1] : m[1].slice(0, cut),
               result: cut < 0 ? null : m[1].slice(cut + 1) };
    },
    renderer: (t) => `<span class="calc" title="calculator call"><span class="calc-expr">${escapeHtml(t.expr)}</span>` +
      (t.result === null ? "" : ` = <span class="calc-result">${escapeHtml(t.result)}</span>`) + "</span>",
  }],
});

function renderMarkdown(text) {
  return DOMPurify.sanitize(marked.parse(text), { FORBID_TAGS: ["style", "form", "input"], FORBID_ATTR: ["style"] });
}

// -- drawing -----------------------------------------------------------------------------------------
function draw() {
  const box = $("messages");
  box.replaceChildren();
  state.messages.forEach((m, i) => box.appendChild(messageElement(m, i)));
  box.scrollTop = box.scrollHeight;
}

function messageElement(m, i) {
  const div = document.createElement("div");
  div.className = `msg ${m.role}`;
  div.dataset.index = i;
  const body = document.createElement("div");
  body.className = "content";
  if (m.role === "user") body.textContent = m.content;
  else body.innerHTML = renderMarkdown(m.content);
  div.appendChild(body);
  const tools = document.createElement("div");
  tools.className = "tools";
  if (m.role === "user") tools.appendChild(button("Edit", "edit", () => editMessage(i, div)));
  if (m.role === "assistant" && i === state.messages.length - 1) {
    tools.appendChild(button("Regenerate", "regenerate", () => regenerate()));
  }
  div.appendChild(tools);
  return div;
}

function button(label, cls, onclick) {
  const b = document.createElement("button");
  b.type = "button"; b.className = cls; b.textContent = label; b.onclick = onclick;
  return b;
}

function editMessage(i, div) {
  if (state.controller) return;
  const area = document.createElement("textarea");
  area.className = "edit-box";
  area.value = state.messages[i].content;
  const save = button("Save & submit", "save", () => {
    state.messages = state.messages.slice(0, i);          // forget everything after the edited message
    state.messages.push({ role: "user", content: area.value });
    draw();
    generate();
  });
  div.replaceChildren(area, save, button("Cancel", "cancel", draw));
  area.focus();
}

function notice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

// -- talking to the server ------------------------------------------------------------------------
function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.key) h.Authorization = `Bearer ${state.key}`;
  return h;
}

function knob(id, parse) {
  const v = parse($(id).value);
  return Number.isFinite(v) ? v : undefined;
}

async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");               // {stream: true}: keeps half a character
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
      if (data.length) yield data.join("\n");
    }
    if (done) return;
  }
}

async function generate() {
  const reply = { role: "assistant", content: "" };
  state.messages.push(reply);
  draw();
  const contentEl = $("messages").lastChild.querySelector(".content");
  contentEl.classList.add("streaming");
  setBusy(true);
  notice("");
  const t0 = performance.now();
  let first = null, pieces = 0, usage = null;
  const body = {
    model: state.model || undefined, messages: state.messages.slice(0, -1), stream: true,
    stream_options: { include_usage: true }, temperature: knob("temperature", parseFloat),
    top_k: knob("top-k", parseInt), top_p: knob("top-p", parseFloat), max_tokens: knob("max-tokens", parseInt),
  };
  state.controller = new AbortController();
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body),
                                                    signal: state.controller.signal });
    if (!r.ok) {
      const err = await r.json().catch(() => ({ error: { message: r.statusText } }));
      if (r.status === 401) $("key-row").hidden = false;
      throw new Error(err.error.message);
    }
    const dropped = parseInt(r.headers.get("X-Dropped-Messages") || "0", 10);
    if (dropped) notice(`The conversation outgrew the model's context: the oldest ${dropped} messages were left out.`);
    for await (const data of sseEvents(r.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        if (first === null) { first = performance.now(); $("ttft").textContent = `TTFT ${Math.round(first - t0)} ms`; }
        pieces += 1;
        reply.content += delta.content;
        contentEl.innerHTML = renderMarkdown(reply.content);
        const secs = (performance.now() - first) / 1000;
        if (secs > 0) $("tps").textContent = `${(pieces / secs).toFixed(1)} tok/s`;
        $("messages").scrollTop = $("messages").scrollHeight;
      }
    }
    if (usage && first !== null) {
      const secs = (performance.now() - first) / 1000;
      if (secs > 0 && usage.completion_tokens > 1) {
        $("tps").textContent = `${((usage.completion_tokens - 1) / secs).toFixed(1)} tok/s`;
      }
    }
  } catch (e) {
    if (e.name === "AbortError") notice("Stopped.");
    else notice(`Error: ${e.message}`);
  } finally {
    state.controller = null;
    document.body.dataset.replies = String(Number(document.body.dataset.replies || 0) + 1);   // replies ended
    setBusy(false);
    draw();
  }
}

function setBusy(busy) {
  document.body.dataset.state = busy ? "streaming" : "idle";
  $("send").hidden = busy;
  $("stop").hidden = !busy;
}

function send() {
  const text = $("input").value;
  if (!text.trim() || state.controller) return;
  $("input").value = "";
  state.messages.push({ role: "user", content: text });
  generate();
}

function regenerate() {
  if (state.controller) return;
  if (state.messages.length && state.messages[state.messages.length - 1].role === "assistant") state.messages.pop();
  generate();
}

function newChat() {
  if (state.controller) state.controller.abort();
  state.messages = [];
  notice("");
  draw();
  $("input").focus();
}

async function checkServer() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    if (r.status === 401) { $("key-row").hidden = false; throw new Error("API key needed"); }
    const models = await r.json();
    state.model = models.data[0].id;
    $("model").textContent = state.model;
    $("status").className = "dot ok";
  } catch (e) {
    $("status").className = "dot down";
    $("model").textContent = `(${e.message})`;
  }
}

// -- wiring ------------------------------------------------------------------------------------------
$("send").onclick = send;
$("stop").onclick = () => state.controller && state.controller.abort();
$("new-chat").onclick = newChat;
$("api-key").value = state.key;
$("api-key").onchange = () => { state.key = $("api-key").value; localStorage.setItem("mnc-key", state.key); checkServer(); };
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
});
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey && e.shiftKey && (e.key === "N" || e.key === "n")) { e.preventDefault(); newChat(); }
});
checkServer().then(() => { setBusy(false); draw(); });
