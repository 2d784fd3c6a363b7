/// GET /: a chat page that streams from /v1/chat/completions (fetch and a ReadableStream,
/// nothing from a CDN), and shows tokens as they arrive. Sampling settings and the
/// conversation live in the browser's localStorage, so both survive a reload. The element
/// ids (prompt, send, stop, regenerate, clear, temperature, topP, topK, maxTokens, seed,
/// stopSeq, truncate, system, apiKey, log) are what scripts/browser_test.py drives.
enum Playground {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>swift-slm playground</title>
    <style>
      :root { font-family: system-ui, sans-serif; color: #1d1d1f; background: #f5f5f7; }
      body { max-width: 860px; margin: 0 auto; padding: 16px; }
      h1 { font-size: 1.2rem; margin: 0 0 8px; }
      #model { color: #555; font-size: .9rem; }
      fieldset { border: 1px solid #ccc; border-radius: 8px; margin: 8px 0; display: flex; flex-wrap: wrap; gap: 12px; }
      legend { font-size: .85rem; color: #555; }
      label { font-size: .85rem; display: flex; flex-direction: column; gap: 2px; }
      label.wide { flex: 1 1 100%; }
      input, textarea, button { font: inherit; }
      input[type=number] { width: 6em; }
      #log { background: white; border-radius: 8px; padding: 8px 12px; min-height: 240px; max-height: 60vh; overflow-y: auto; }
      .msg { margin: 10px 0; }
      .msg b { display: block; font-size: .8rem; color: #666; }
      .text { white-space: pre-wrap; }
      .user .text { color: #0a4a8a; }
      .error { color: #b00020; }
      .meta { display: flex; gap: 8px; align-items: center; font-size: .8rem; color: #666; margin-top: 2px; }
      .meta button { font-size: .75rem; padding: 0 6px; }
      form { display: flex; gap: 8px; margin-top: 8px; flex-wrap: wrap; }
      #prompt { flex: 1 1 300px; min-height: 3em; }
    </style>
    </head>
    <body>
    <h1>swift-slm playground <span id="model"></span></h1>
    <fieldset id="settings">
      <legend>Sampling</legend>
      <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8"></label>
      <label>Top p <input id="topP" type="number" min="0.01" max="1" step="0.05" value="1"></label>
      <label>Top k (0 = off) <input id="topK" type="number" min="0" step="1" value="0"></label>
      <label>Max tokens <input id="maxTokens" type="number" min="1" max="4096" value="200"></label>
      <label>Seed (empty = random) <input id="seed" type="number" step="1" placeholder="random"></label>
      <label>Stop sequences (comma-separated, \n = newline) <input id="stopSeq" type="text" placeholder="none"></label>
      <label><span><input id="truncate" type="checkbox" checked> Keep only the end of long chats</span>
        <small>(sends truncate_prompt_tokens: -1)</small></label>
      <label>API key (if the server has one) <input id="apiKey" type="password" autocomplete="off"></label>
      <label class="wide">System message <input id="system" type="text" placeholder="optional"></label>
    </fieldset>
    <div id="log" role="log" aria-live="polite" aria-label="Conversation"></div>
    <form id="form">
      <textarea id="prompt" aria-label="Message" placeholder="Say something (Enter sends, Shift+Enter for a new line)"></textarea>
      <button id="send" type="submit">Send</button>
      <button id="stop" type="button" disabled>Stop</button>
      <button id="regenerate" type="button" disabled>Regenerate</button>
      <button id="clear" type="button">Clear</button>
    </form>
    <script>
    "use strict";
    const $ = (id) => document.getElementById(id);
    const log = $("log");
    const SETTINGS = ["temperature", "topP", "topK", "maxTokens", "seed", "stopSeq", "system", "truncate"];
    let messages = [];   // { role, content, stats? }; only role and content go to the server
    let modelName = null;
    let controller = null;
    let epoch = 0;       // bumped by Clear, so a reply that was under way is not kept

    // --- persistence ---------------------------------------------------------------
    function load(key, fallback) {
      try { const v = JSON.parse(localStorage.getItem(key)); return v === null ? fallback : v; } catch (e) { return fallback; }
    }
    function saveMessages() { localStorage.setItem("slm-chat", JSON.stringify(messages)); }
    function saveSettings() {
      const s = {};
      for (const id of SETTINGS) s[id] = $(id).type === "checkbox" ? $(id).checked : $(id).value;
      localStorage.setItem("slm-settings", JSON.stringify(s));
    }
    const saved = load("slm-settings", {});
    for (const id of SETTINGS) {
      if (typeof saved[id] === "string") $(id).value = saved[id];
      if (typeof saved[id] === "boolean") $(id).checked = saved[id];
      $(id).addEventListener("change", saveSettings);
    }
    $("apiKey").value = localStorage.getItem("slm-api-key") || "";
    $("apiKey").addEventListener("change", () => { localStorage.setItem("slm-api-key", $("apiKey").value); loadModel(); });

    // --- rendering -------------------------------------------------------------------
    async function copyText(text) {
      if (navigator.clipboard && window.isSecureContext) {
        try { await navigator.clipboard.writeText(text); return true; } catch (e) { /* fall back below */ }
      }
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.left = "-9999px";
      document.body.append(area);
      area.select();
      let ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      return ok;
    }

    // Appends a message and returns its parts; assistant messages get stats and a Copy button.
    function render(role, who, text, stats) {
      const div = document.createElement("div");
      div.className = "msg " + role;
      const b = document.createElement("b");
      b.textContent = who;
      const body = document.createElement("div");
      body.className = "text";
      body.textContent = text;
      div.append(b, body);
      const parts = { div, text: body, stats: null };
      if (role === "assistant") {
        const meta = document.createElement("div");
        meta.className = "meta";
        const st = document.createElement("span");
        st.className = "stats";
        st.textContent = stats || "";
        const copy = document.createElement("button");
        copy.type = "button";
        copy.className = "copy";
        copy.textContent = "Copy";
        copy.setAttribute("aria-label", "Copy this reply");
        copy.addEventListener("click", async () => {
          const ok = await copyText(body.textContent);
          copy.textContent = ok ? "Copied" : "Copy failed";
          setTimeout(() => { copy.textContent = "Copy"; }, 1200);
        });
        meta.append(st, copy);
        div.append(meta);
        parts.stats = st;
      }
      log.append(div);
      log.scrollTop = log.scrollHeight;
      return parts;
    }

    function renderAll() {
      log.textContent = "";
      for (const m of messages) render(m.role, m.role === "user" ? "you" : (m.model || "model"), m.content, m.stats);
      updateButtons();
    }

    function updateButtons() {
      const busy = controller !== null;
      $("send").disabled = busy;
      $("stop").disabled = !busy;
      $("regenerate").disabled = busy || !messages.some((m) => m.role === "user");
    }

    // --- talking to the server ----------------------------------------------------
    function headers() {
      const h = { "Content-Type": "application/json" };
      const key = $("apiKey").value.trim();
      if (key) h["Authorization"] = "Bearer " + key;
      return h;
    }

    async function loadModel() {
      try {
        const r = await fetch("/v1/models", { headers: headers() });
        const body = await r.json();
        if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
        modelName = body.data[0].id;
        $("model").textContent = "· " + modelName;
      } catch (e) {
        $("model").textContent = "· " + e.message;
      }
    }

    // Reads "data: ..." lines of a server-sent event stream as they arrive.
    async function* events(response) {
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (line.startsWith("data: ")) yield line.slice(6);
          }
        }
      }
    }

    function requestBody() {
      const all = [];
      const system = $("system").value.trim();
      if (system) all.push({ role: "system", content: system });
      for (const m of messages) all.push({ role: m.role, content: m.content });
      const body = {
        model: modelName, messages: all, stream: true, stream_options: { include_usage: true },
        temperature: Number($("temperature").value), top_p: Number($("topP").value),
        top_k: Number($("topK").value), max_tokens: Number($("maxTokens").value),
      };
      const seed = $("seed").value.trim();
      if (seed !== "") body.seed = Number(seed);
      const stop = $("stopSeq").value.split(/[,\n]/).map((s) => s.trim().replace(/\\n/g, "\n")).filter((s) => s !== "");
      if (stop.length) body.stop = stop;
      if ($("truncate").checked) body.truncate_prompt_tokens = -1;
      return body;
    }

    // Streams an assistant reply to the conversation as it stands (which ends with a user message).
    async function generate() {
      if (!modelName) await loadModel();
      const who = modelName || "model", mine = epoch;
      const out = render("assistant", who, "", "generating…");
      controller = new AbortController();
      updateButtons();
      const started = performance.now();
      let tokens = null, chunks = 0, reply = "", finish = "", failed = false;
      try {
        const r = await fetch("/v1/chat/completions", {
          method: "POST", headers: headers(), signal: controller.signal, body: JSON.stringify(requestBody()),
        });
        if (!r.ok) {
          const body = await r.json().catch(() => ({}));
          throw new Error(body.error ? body.error.message : r.status + " " + r.statusText);
        }
        for await (const data of events(r)) {
          if (data === "[DONE]") break;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          if (chunk.usage) tokens = chunk.usage.completion_tokens;
          for (const choice of chunk.choices) {
            if (choice.delta && choice.delta.content) {
              chunks += 1;
              reply += choice.delta.content;
              out.text.textContent = reply;
              log.scrollTop = log.scrollHeight;
            }
            if (choice.finish_reason) finish = choice.finish_reason;
          }
        }
      } catch (e) {
        if (e.name === "AbortError") {
          finish = "stopped";
        } else {
          failed = true;
          out.div.remove();
          render("error", "error", e.message);
        }
      }
      if (!failed && mine === epoch) {
        const seconds = (performance.now() - started) / 1000;
        const n = tokens === null ? chunks : tokens;
        const stats = `${n} tokens · ${seconds.toFixed(2)} s · ${(n / Math.max(seconds, 1e-6)).toFixed(1)} tokens/s` +
          (finish ? ` · ${finish}` : "");
        out.stats.textContent = stats;
        messages.push({ role: "assistant", content: reply, stats, model: who });
        saveMessages();
      }
      controller = null;
      updateButtons();
    }

    function clearErrors() { for (const e of log.querySelectorAll(".msg.error")) e.remove(); }

    $("form").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("prompt").value.trim();
      if (!text || controller) return;
      $("prompt").value = "";
      clearErrors();
      messages.push({ role: "user", content: text });
      saveMessages();
      render("user", "you", text);
      generate();
    });
    $("prompt").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
    });
    $("stop").addEventListener("click", () => { if (controller) controller.abort(); });
    $("regenerate").addEventListener("click", () => {
      if (controller) return;
      while (messages.length && messages[messages.length - 1].role === "assistant") messages.pop();
      if (!messages.length) return;
      saveMessages();
      renderAll();
      generate();
    });
    $("clear").addEventListener("click", () => {
      if (controller) controller.abort();
      epoch += 1;
      messages = [];
      saveMessages();
      renderAll();
    });

    messages = load("slm-chat", []);
    if (!Array.isArray(messages)) messages = [];
    renderAll();
    loadModel();
    </script>
    </body>
    </html>
    """#
}
