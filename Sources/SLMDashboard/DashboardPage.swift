/// GET /: the dashboard page. It listens to /events (EventSource, which reconnects by
/// itself) and replaces the figures and charts with each snapshot. Nothing from a CDN.
enum DashboardPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>swift-slm dashboard</title>
    <style>
      :root { font-family: system-ui, sans-serif; color: #1d1d1f; background: #f5f5f7; }
      body { margin: 0 auto; padding: 16px; max-width: 1600px; }
      h1 { font-size: 1.2rem; margin: 0 0 4px; }
      #status { color: #666; font-size: .85rem; margin-bottom: 12px; }
      #runs { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }
      .run { background: white; border-radius: 8px; padding: 10px 14px; }
      .run h2 { font-size: 1rem; margin: 0 0 6px; }
      .run .state { font-size: .8rem; color: #666; font-weight: normal; }
      .run dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 0; font-size: .85rem; }
      .run dt { color: #666; }
      .run dd { margin: 0; font-variant-numeric: tabular-nums; }
      .bar { height: 6px; background: #e5e5e5; border-radius: 3px; margin: 6px 0; }
      .bar div { height: 100%; background: #1f77b4; border-radius: 3px; }
      .sample { font-family: ui-monospace, monospace; font-size: .8rem; white-space: pre-wrap; overflow-wrap: anywhere; background: #fafafa;
                border-left: 3px solid #ccc; padding: 4px 8px; margin-top: 6px; max-height: 8em; overflow-y: auto; }
      #charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; margin-top: 12px; }
      .chart { background: white; border-radius: 8px; padding: 6px; }
      .chart svg { width: 100%; height: auto; }
    </style>
    </head>
    <body>
    <h1>swift-slm dashboard</h1>
    <div id="status">connecting…</div>
    <div id="runs"></div>
    <div id="charts">
      <div class="chart" id="chart-loss"></div>
      <div class="chart" id="chart-lr"></div>
      <div class="chart" id="chart-tokens_per_sec"></div>
      <div class="chart" id="chart-mfu"></div>
    </div>
    <script>
    "use strict";
    const $ = (id) => document.getElementById(id);

    function duration(s) {
      if (s == null || !isFinite(s)) return "–";
      s = Math.round(s);
      const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
      return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(sec).padStart(2, "0");
    }
    const num = (v, digits) => v == null ? "–" : Number(v).toFixed(digits);
    const rate = (v) => v == null ? "–" : v >= 1000 ? (v / 1000).toFixed(1) + "k" : v.toFixed(0);

    function card(run) {
      const div = document.createElement("div");
      div.className = "run";
      div.dataset.run = run.name;
      const h2 = document.createElement("h2");
      h2.textContent = run.name + " ";
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = [run.architecture, run.parameters ? (run.parameters / 1e6).toFixed(2) + "M parameters" : null, run.status]
        .filter(Boolean).join(" · ");
      h2.append(state);
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("div");
      fill.style.width = run.totalSteps ? Math.min(100, 100 * (run.step || 0) / run.totalSteps) + "%" : "0";
      bar.append(fill);
      const dl = document.createElement("dl");
      const rows = [
        ["step", run.step == null ? "–" : run.step + (run.totalSteps ? " / " + run.totalSteps : "")],
        ["loss", num(run.loss, 4)],
        ["validation loss", num(run.validationLoss, 4) + (run.bestValidationLoss != null ? " (best " + num(run.bestValidationLoss, 4) + ")" : "")],
        ["learning rate", run.learningRate == null ? "–" : run.learningRate.toExponential(2)],
        ["tokens/s", rate(run.tokensPerSecond)],
        ["MFU", run.mfu == null ? "–" : (100 * run.mfu).toFixed(1) + "%"],
        ["elapsed", duration(run.elapsed)],
        ["ETA", duration(run.eta)],
      ];
      for (const [k, v] of rows) {
        const dt = document.createElement("dt"), dd = document.createElement("dd");
        dt.textContent = k;
        dd.textContent = v;
        dd.className = k.replace(/[^a-z]/gi, "-");
        dl.append(dt, dd);
      }
      div.append(h2, bar, dl);
      if (run.sample) {
        const sample = document.createElement("div");
        sample.className = "sample";
        sample.title = "sample at step " + run.sampleStep;
        sample.textContent = run.sample;
        div.append(sample);
      }
      return div;
    }

    function show(snapshot) {
      $("runs").replaceChildren(...snapshot.runs.map(card));
      for (const [id, svg] of Object.entries(snapshot.charts)) {
        let box = $("chart-" + id);
        if (!box) {
          box = document.createElement("div");
          box.className = "chart";
          box.id = "chart-" + id;
          $("charts").append(box);
        }
        box.innerHTML = svg;   // drawn by the dashboard's own code, text escaped
      }
      $("status").textContent = "updated " + new Date(snapshot.updated).toLocaleTimeString() + " · " +
        snapshot.runs.length + (snapshot.runs.length === 1 ? " run" : " runs");
    }

    const events = new EventSource("/events");
    events.addEventListener("snapshot", (e) => show(JSON.parse(e.data)));
    events.onerror = () => { $("status").textContent = "disconnected; retrying…"; };
    </script>
    </body>
    </html>
    """#
}
