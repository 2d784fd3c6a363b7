/// GET /: a chat page that streams from /v1/chat/completions (fetch and a ReadableStream,
/// nothing from a CDN), and shows tokens as they arrive.
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
      body { max-width: 820px; margin: 0 auto; padding: 16px; }
      h1 { font-size: 1.2rem; margin: 0 0 8px; }
      #model { color: #555; font-size: .9rem; }
      fieldset { border: 1px solid #ccc; border-radius: 8px; margin: 8px 0; display: flex; flex-wrap: wrap; gap: 12px; }
      label { font-size: .85rem; display: flex; flex-direction: column; gap: 2px; }
      input, textarea, button { font: inherit; }
      input[type=number] { width: 6em; }
      #system { width: 100%; }
      #log { background: white; border-radius: 8px; padding: 8px 12px; min-height: 240px; max-height: 60vh; overflow-y: auto; }
      .msg { margin: 8px 0; white-space: pre-wrap; }
      .msg b { display: block; font-size: .8rem; color: #666; }
      .user { color: #0a4a8a; }
      .error { color: #b00020; }
      form { display: flex; gap: 8px; margin-top: 8px; }
      #prompt { flex: 1; min-height: 3em; }
      #stats { font-size: .8rem; color: #666; margin-top: 4px; min-height: 1em; }
    </style>
    </head>
    <body>
    <h1>swift-slm playground <span id="model"></span></h1>
    <fieldset>
      <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8"></label>
      <label>Max tokens <input id="maxTokens" type="number" min="1" max="4096" value="200"></label>
      <label>Top p <input id="topP" type="number" min="0.01" max="1" step="0.05" value="1"></label>
      <label>API key (if the server has one) <input id="apiKey" type="password" autocomplete="off"></label>
      <label style="flex: 1 1 100%">System message <input id="system" type="text" placeholder="optional"></label>
    </fieldset>
    <div id="log"></div>
    <div id="stats"></div>
    <form id="form">
      <textarea id="prompt" placeholder="Say something (Enter sends, Shift+Enter for a new line)"></textarea>
      <button id="send" type="submit">Send</button>
      <button id="stop" type="button" disabled>Stop</button>
      <button id="clear" type="button">Clear</button>
    </form>
    <script>
    "use strict";
    const $ = (id) => document.getElementById(id);
    const log = $("log");
    let messages = [];
    let modelName = null;
    let controller = null;

    $("apiKey").value = localStorage.getItem("slm-api-key") || "";
    $("apiKey").addEventListener("change", () => { localStorage.setItem("slm-api-key", $("apiKey").value); loadModel(); });

    function headers() {
      const h = { "Content-Type": "application/json" };
      const key = $("apiKey").value.trim();
      if (key) h["Authorization"] = "Bearer " + key;
      return h;
    }

    function addMessage(cls, who, text) {
      const div = document.createElement("div");
      div.className = "msg " + cls;
      const b = document.createElement("b");
      b.textContent = who;
      const span = document.createElement("span");
      span.textContent = text;
      div.append(b, span);
      log.append(div);
      log.scrollTop = log.scrollHeight;
      return span;
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

    async function send(text) {
      if (!modelName) await loadModel();
      messages.push({ role: "user", content: text });
      addMessage("user", "you", text);
      const out = addMessage("assistant", modelName || "model", "");
      const all = [];
      const system = $("system").value.trim();
      if (system) all.push({ role: "system", content: system });
      all.push(...messages);
      controller = new AbortController();
      $("send").disabled = true;
      $("stop").disabled = false;
      const started = performance.now();
      let first = null, tokens = 0, reply = "", finish = "";
      try {
        const r = await fetch("/v1/chat/completions", {
          method: "POST", headers: headers(), signal: controller.signal,
          body: JSON.stringify({
            model: modelName, messages: all, stream: true, stream_options: { include_usage: true },
            temperature: Number($("temperature").value), max_tokens: Number($("maxTokens").value), top_p: Number($("topP").value),
          }),
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
              if (first === null) first = performance.now();
              reply += choice.delta.content;
              out.textContent = reply;
              log.scrollTop = log.scrollHeight;
            }
            if (choice.finish_reason) finish = choice.finish_reason;
          }
        }
        const seconds = (performance.now() - started) / 1000;
        $("stats").textContent = `${tokens} tokens in ${seconds.toFixed(2)} s` +
          (first !== null ? `, first token after ${((first - started) / 1000).toFixed(2)} s` : "") +
          (tokens > 0 ? `, ${(tokens / seconds).toFixed(0)} tokens/s` : "") + (finish ? `, finish: ${finish}` : "");
      } catch (e) {
        if (e.name === "AbortError") {
          $("stats").textContent = "stopped";
        } else {
          addMessage("error", "error", e.message);
        }
      } finally {
        messages.push({ role: "assistant", content: reply.trim() });
        controller = null;
        $("send").disabled = false;
        $("stop").disabled = true;
      }
    }

    $("form").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("prompt").value.trim();
      if (!text || controller) return;
      $("prompt").value = "";
      send(text);
    });
    $("prompt").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
    });
    $("stop").addEventListener("click", () => { if (controller) controller.abort(); });
    $("clear").addEventListener("click", () => { messages = []; log.textContent = ""; $("stats").textContent = ""; });
    loadModel();
    </script>
    </body>
    </html>
    """#
}
