import Foundation

/// The pictures `slm inspect` writes for one text: the surprisal strip, attention maps
/// per layer and head, Monarch matrices, organelle gates; each as an SVG file, and all
/// of them on one HTML page.
public struct InspectionReport: Sendable {
    public var model: String
    public var tokens: [String]
    public var surprisal: [Double]
    /// Per layer and head, T×T.
    public var attention: [[[Float]]]
    public var monarch: [[[Float]]]
    /// Per layer, per gate, per channel.
    public var gates: [[[Float]]]
    public var gateNames: [String]

    public init(model: String, tokens: [String], surprisal: [Double], attention: [[[Float]]], monarch: [[[Float]]],
                gates: [[[Float]]], gateNames: [String]) {
        self.model = model
        self.tokens = tokens
        self.surprisal = surprisal
        self.attention = attention
        self.monarch = monarch
        self.gates = gates
        self.gateNames = gateNames
    }

    /// File name → contents.
    public func files() -> [(name: String, contents: String)] {
        var files: [(name: String, contents: String)] = []
        let T = tokens.count
        let strip = SurprisalStrip(title: "surprisal per token (bits) — mean \(String(format: "%.3f", meanSurprisal)) bits/token",
                                   tokens: tokens, bits: surprisal)
        files.append(("surprisal.svg", strip.svg()))
        for (l, heads) in attention.enumerated() {
            for (h, m) in heads.enumerated() {
                files.append(("attention-layer\(l)-head\(h).svg",
                              Heatmap(title: "attention, layer \(l) head \(h)", rows: T, columns: T, values: m,
                                      rowLabels: tokens, columnLabels: tokens).svg()))
            }
        }
        for (l, heads) in monarch.enumerated() {
            for (h, m) in heads.enumerated() {
                files.append(("monarch-layer\(l)-head\(h).svg",
                              Heatmap(title: "Monarch mixing, layer \(l) head \(h)", rows: T, columns: T, values: m,
                                      rowLabels: tokens, columnLabels: tokens, signed: true).svg()))
            }
        }
        if !gates.isEmpty {
            files.append(("gates.svg", GateBars(title: "gates per layer (mean over channels)", names: gateNames, layers: gateMeans).svg()))
        }
        files.append(("index.html", html(files)))
        return files
    }

    /// Per layer, each gate's mean weight over the channels.
    public var gateMeans: [[Double]] {
        gates.map { layer in layer.map { w in Double(w.reduce(0, +)) / Double(max(w.count, 1)) } }
    }

    public var meanSurprisal: Double {
        let finite = surprisal.filter(\.isFinite)
        return finite.isEmpty ? .nan : finite.reduce(0, +) / Double(finite.count)
    }

    /// Per layer, the mean over heads and positions of the attention on the last `k`
    /// tokens (the query's own included): how local the heads are.
    public func localAttention(last k: Int) -> [Double] {
        let T = tokens.count
        return attention.map { heads in
            var total = 0.0
            for m in heads {
                for t in 0..<T { for s in max(0, t - k + 1)...t { total += Double(m[t * T + s]) } }
            }
            return total / Double(max(heads.count * T, 1))
        }
    }

    private func html(_ svgs: [(name: String, contents: String)]) -> String {
        func section(_ title: String, _ prefix: String) -> String {
            let parts = svgs.filter { $0.name.hasPrefix(prefix) }
            guard !parts.isEmpty else { return "" }
            return "<h2>\(SVGWriter.escape(title))</h2>\n<div class=\"grid\">\n"
                + parts.map { "<figure>\($0.contents)</figure>" }.joined(separator: "\n") + "\n</div>\n"
        }
        let local = localAttention(last: 4)
        let note = local.isEmpty ? "" : "<p>Attention on the last 4 tokens (the query's own included), mean over heads and positions, per layer: "
            + local.map { String(format: "%.0f%%", 100 * $0) }.joined(separator: ", ") + ".</p>\n"
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>slm inspect — \(SVGWriter.escape(model))</title>
        <style>body{font-family:system-ui,sans-serif;margin:16px;color:#1d1d1f}
        .grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;background:#fafafa;padding:4px}
        svg{max-width:100%;height:auto}</style></head><body>
        <h1>\(SVGWriter.escape(model)) on \(tokens.count) tokens</h1>
        \(section("Surprisal", "surprisal"))\(note)\(section("Attention maps (row: query position, column: the token it reads)", "attention"))\(section("Monarch mixing matrices (row: output position, column: input position)", "monarch"))\(section("Gates", "gates"))</body></html>

        """
    }
}
