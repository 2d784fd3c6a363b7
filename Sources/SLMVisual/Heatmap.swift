import Foundation

/// A matrix as coloured cells with its rows' and columns' labels: attention probabilities
/// (0…1, white to blue) or a signed mixing matrix (blue below zero, red above).
public struct Heatmap: Sendable {
    public var title: String
    public var rows: Int
    public var columns: Int
    /// rows × columns, row-major.
    public var values: [Float]
    public var rowLabels: [String]
    public var columnLabels: [String]
    /// Signed values get a diverging scale symmetric around 0; others run 0…max.
    public var signed: Bool
    public var cell = 12.0

    public init(title: String, rows: Int, columns: Int, values: [Float], rowLabels: [String], columnLabels: [String],
                signed: Bool = false) {
        precondition(values.count == rows * columns)
        self.title = title
        self.rows = rows
        self.columns = columns
        self.values = values
        self.rowLabels = rowLabels
        self.columnLabels = columnLabels
        self.signed = signed
    }

    public func svg() -> String {
        let labelW = 8 + 7 * Double(min(rowLabels.map(\.count).max() ?? 1, 8))
        let left = labelW, top = 26 + labelW
        let width = left + Double(columns) * cell + 10, height = top + Double(rows) * cell + 10
        var out = SVGWriter(width: max(width, 160), height: height)
        out.text(title, x: 4, y: 16, anchor: "start", size: 12, weight: "600")
        let top1 = values.map { abs($0) }.max() ?? 1, scale = top1 > 0 ? top1 : 1
        // No tooltip per cell: the numbers are in inspection.json, and pages stay small.
        out.raw(#"<g class="cells">"#)
        for r in 0..<rows {
            for c in 0..<columns {
                let v = values[r * columns + c]
                out.raw(#"<rect x="\#(f(left + Double(c) * cell))" y="\#(f(top + Double(r) * cell))" width="\#(f(cell))" height="\#(f(cell))" fill="\#(colour(v / scale))"/>"#)
            }
        }
        out.raw("</g>")
        for r in 0..<rows {
            out.text(String((rowLabels[safe: r] ?? "").prefix(8)), x: left - 3, y: top + (Double(r) + 0.75) * cell,
                     anchor: "end", size: 9, font: "monospace")
        }
        for c in 0..<columns {
            let x = left + (Double(c) + 0.75) * cell, y = top - 3
            out.raw(#"<text x="\#(f(x))" y="\#(f(y))" font-size="9" font-family="monospace" transform="rotate(-90 \#(f(x)) \#(f(y)))">\#(SVGWriter.escape(String((columnLabels[safe: c] ?? "").prefix(8))))</text>"#)
        }
        return out.finish()
    }

    /// v in −1…1 (signed) or 0…1.
    private func colour(_ v: Float) -> String {
        let t = Double(min(max(abs(v), 0), 1))
        let (r, g, b): (Double, Double, Double) = signed && v > 0 ? (1, 1 - 0.8 * t, 1 - 0.85 * t) : (1 - 0.9 * t, 1 - 0.7 * t, 1 - 0.3 * t)
        return String(format: "#%02x%02x%02x", Int(r * 255), Int(g * 255), Int(b * 255))
    }
}

/// A text's tokens in reading order, each boxed and coloured by how surprised the model
/// was to see it (white: expected, red: surprising), wrapped into lines.
public struct SurprisalStrip: Sendable {
    public var title: String
    public var tokens: [String]
    /// Bits per token; nan where there is no prediction (the first token).
    public var bits: [Double]
    public var maxBits: Double

    public init(title: String, tokens: [String], bits: [Double], maxBits: Double? = nil) {
        self.title = title
        self.tokens = tokens
        self.bits = bits
        self.maxBits = maxBits ?? max(bits.filter(\.isFinite).max() ?? 1, 1)
    }

    public func svg(width: Double = 900) -> String {
        let charW = 7.8, lineH = 26.0, pad = 10.0
        var placed: [(x: Double, y: Double, w: Double)] = []
        var x = pad, y = 34.0
        for t in tokens {
            let w = Double(max(SVGWriter.escape(t).count, 1)) * charW + 6
            if x + w > width - pad && x > pad { (x, y) = (pad, y + lineH) }
            placed.append((x, y, w))
            x += w + 2
        }
        var out = SVGWriter(width: width, height: y + lineH + 24)
        out.text(title, x: pad, y: 18, anchor: "start", size: 12, weight: "600")
        for (i, t) in tokens.enumerated() {
            let b = bits[safe: i] ?? .nan, p = placed[i]
            let heat = b.isFinite ? min(b / maxBits, 1) : 0
            let fill = b.isFinite ? String(format: "#%02x%02x%02x", 255, Int(255 * (1 - 0.75 * heat)), Int(255 * (1 - 0.85 * heat))) : "#eeeeee"
            let label = b.isFinite ? String(format: "%.2f bits", b) : "first token (no prediction)"
            out.raw(#"<g class="token" data-bits="\#(b.isFinite ? String(format: "%.6f", b) : "nan")"><rect x="\#(f(p.x))" y="\#(f(p.y))" width="\#(f(p.w))" height="20" rx="3" fill="\#(fill)" stroke="rgb(221,221,221)"/><title>\#(SVGWriter.escape(t)): \#(label)</title>"#)
            out.text(t, x: p.x + 3, y: p.y + 14, anchor: "start", size: 13, font: "monospace")
            out.raw("</g>")
        }
        out.text(String(format: "white: expected · red: %.1f bits or more", maxBits), x: pad, y: y + lineH + 14, anchor: "start",
                 size: 10, fill: "#666")
        return out.finish()
    }
}
