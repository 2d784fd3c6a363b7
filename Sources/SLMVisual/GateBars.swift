/// Stacked horizontal bars, one per layer: how a Symbio layer splits its output among
/// its organelles (each segment is a gate's mean weight over channels).
public struct GateBars: Sendable {
    public var title: String
    public var names: [String]
    /// Per layer, one weight per name; each row sums to about 1.
    public var layers: [[Double]]

    public init(title: String, names: [String], layers: [[Double]]) {
        self.title = title
        self.names = names
        self.layers = layers
    }

    public func svg() -> String {
        let left = 70.0, barH = 22.0, gap = 8.0, width = 520.0, plotW = width - left - 20
        let height = 60 + Double(layers.count) * (barH + gap) + 24
        var out = SVGWriter(width: width, height: height)
        out.text(title, x: width / 2, y: 22, anchor: "middle", size: 14, weight: "600")
        for (i, name) in names.enumerated() {
            let x = left + Double(i) * 150
            out.raw(#"<rect x="\#(f(x))" y="34" width="12" height="12" fill="\#(LineChart.palette[i % LineChart.palette.count])"/>"#)
            out.text(name, x: x + 16, y: 44, anchor: "start", size: 11)
        }
        for (l, weights) in layers.enumerated() {
            let y = 56 + Double(l) * (barH + gap)
            out.text("layer \(l)", x: left - 8, y: y + barH * 0.7, anchor: "end", size: 11)
            var x = left
            let total = max(weights.reduce(0, +), 1e-12)
            for (i, w) in weights.enumerated() {
                let segment = plotW * w / total
                out.raw(#"<rect class="gate" data-layer="\#(l)" data-gate="\#(SVGWriter.escape(names[safe: i] ?? "\(i)"))" x="\#(f(x))" y="\#(f(y))" width="\#(f(segment))" height="\#(f(barH))" fill="\#(LineChart.palette[i % LineChart.palette.count])"><title>\#(SVGWriter.escape(names[safe: i] ?? "")) \#(String(format: "%.3f", w))</title></rect>"#)
                if segment > 36 {
                    out.text(String(format: "%.2f", w), x: x + segment / 2, y: y + barH * 0.7, anchor: "middle", size: 11, fill: "white")
                }
                x += segment
            }
        }
        return out.finish()
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
