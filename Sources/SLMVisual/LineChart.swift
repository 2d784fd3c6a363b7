import Foundation

public struct ChartPoint: Sendable, Equatable {
    public var x, y: Double
    public init(x: Double, y: Double) {
        self.x = x
        self.y = y
    }
}

/// A line chart written as SVG by hand: axes with ticks and labels, one polyline per
/// series (`class="series"`, its name in `data-series`), a legend, optionally a
/// logarithmic y axis. Long series are thinned to `maxPoints` for the drawing.
public struct LineChart: Sendable {
    public struct Series: Sendable {
        public var name: String
        public var points: [ChartPoint]
        public init(name: String, points: [ChartPoint]) {
            self.name = name
            self.points = points
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var logY = false
    public var width = 760.0
    public var height = 440.0
    public var maxPoints = 2000

    public init(title: String, xLabel: String, yLabel: String, series: [Series], logY: Bool = false) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.logY = logY
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                          "#7f7f7f", "#bcbd22"]

    public func svg() -> String {
        let left = 72.0, right = 20.0, top = 40.0, bottom = 56.0
        let plotW = width - left - right, plotH = height - top - bottom
        let drawn = series.map { s in Series(name: s.name, points: s.points.filter { !logY || $0.y > 0 }) }
        let xs = drawn.flatMap { $0.points.map(\.x) }, ys = drawn.flatMap { $0.points.map(\.y) }
        var out = SVGWriter(width: width, height: height)
        out.text(title, x: width / 2, y: 22, anchor: "middle", size: 15, weight: "600")
        guard let x0 = xs.min(), let x1 = xs.max(), let y0 = ys.min(), let y1 = ys.max() else {
            out.text("no data yet", x: width / 2, y: height / 2, anchor: "middle", size: 13, fill: "#888")
            return out.finish()
        }
        let xScale = Axis(low: x0, high: x1, log: false)
        let yScale = Axis(low: y0, high: y1, log: logY)
        func px(_ x: Double) -> Double { left + xScale.fraction(x) * plotW }
        func py(_ y: Double) -> Double { top + (1 - yScale.fraction(y)) * plotH }

        out.raw(#"<g class="grid" stroke="rgb(229,229,229)" stroke-width="1">"#)
        for t in yScale.ticks() { out.line(left, py(t), left + plotW, py(t)) }
        for t in xScale.ticks() { out.line(px(t), top, px(t), top + plotH) }
        out.raw("</g>")
        out.raw(#"<g class="axes" stroke="rgb(51,51,51)" stroke-width="1" fill="none">"#)
        out.raw(#"<rect x="\#(f(left))" y="\#(f(top))" width="\#(f(plotW))" height="\#(f(plotH))"/>"#)
        out.raw("</g>")
        for t in yScale.ticks() {
            out.text(Axis.label(t), x: left - 6, y: py(t) + 4, anchor: "end", size: 11)
        }
        for t in xScale.ticks() {
            out.text(Axis.label(t), x: px(t), y: top + plotH + 16, anchor: "middle", size: 11)
        }
        out.text(xLabel, x: left + plotW / 2, y: height - 14, anchor: "middle", size: 12)
        out.raw(#"<text x="16" y="\#(f(top + plotH / 2))" font-size="12" text-anchor="middle" transform="rotate(-90 16 \#(f(top + plotH / 2)))">\#(SVGWriter.escape(yLabel + (logY ? " (log scale)" : "")))</text>"#)

        for (i, s) in drawn.enumerated() where !s.points.isEmpty {
            let colour = Self.palette[i % Self.palette.count]
            let points = thinned(s.points).map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            out.raw(#"<polyline class="series" data-series="\#(SVGWriter.escape(s.name))" fill="none" stroke="\#(colour)" stroke-width="1.6" stroke-linejoin="round" points="\#(points)"/>"#)
            if s.points.count == 1, let p = s.points.first {
                out.raw(#"<circle cx="\#(f(px(p.x)))" cy="\#(f(py(p.y)))" r="3" fill="\#(colour)"/>"#)
            }
        }
        // The legend, top right inside the plot.
        let named = drawn.enumerated().filter { !$0.element.points.isEmpty }
        if !named.isEmpty {
            let longest = named.map { $0.element.name.count }.max() ?? 0
            let boxW = 34 + Double(longest) * 6.6, boxH = Double(named.count) * 16 + 8
            let bx = left + plotW - boxW - 8, by = top + 8
            out.raw(#"<g class="legend"><rect x="\#(f(bx))" y="\#(f(by))" width="\#(f(boxW))" height="\#(f(boxH))" fill="white" fill-opacity="0.85" stroke="rgb(204,204,204)"/>"#)
            for (row, (i, s)) in named.enumerated() {
                let y = by + 14 + Double(row) * 16
                out.raw(#"<line x1="\#(f(bx + 6))" y1="\#(f(y - 4))" x2="\#(f(bx + 24))" y2="\#(f(y - 4))" stroke="\#(Self.palette[i % Self.palette.count])" stroke-width="2"/>"#)
                out.text(s.name, x: bx + 28, y: y, anchor: "start", size: 11)
            }
            out.raw("</g>")
        }
        return out.finish()
    }

    /// At most `maxPoints`, evenly spaced by index, keeping the first and the last.
    private func thinned(_ points: [ChartPoint]) -> [ChartPoint] {
        guard points.count > maxPoints, maxPoints > 1 else { return points }
        let stride = Double(points.count - 1) / Double(maxPoints - 1)
        return (0..<maxPoints).map { points[Int((Double($0) * stride).rounded())] }
    }
}

/// An axis's range and ticks: "nice" round numbers, linear or logarithmic.
struct Axis {
    let low, high: Double
    let log: Bool

    init(low: Double, high: Double, log: Bool) {
        self.log = log
        var (a, b) = log ? (Foundation.log10(low), Foundation.log10(high)) : (low, high)
        if b - a < 1e-12 { (a, b) = (a - 0.5 * max(abs(a), 1) * 0.1, b + 0.5 * max(abs(b), 1) * 0.1) }
        let pad = (b - a) * 0.04
        (self.low, self.high) = (a - pad, b + pad)
    }

    /// Where v falls between the ends, 0…1.
    func fraction(_ v: Double) -> Double { ((log ? Foundation.log10(v) : v) - low) / (high - low) }

    /// Tick values (in data units).
    func ticks() -> [Double] {
        if log && high - low >= 1 {
            var out: [Double] = []
            for e in Int(floor(low))...Int(ceil(high)) {
                for m in (high - low > 3 ? [1.0] : [1, 2, 5]) {
                    let v = m * pow(10, Double(e))
                    let l = Foundation.log10(v)
                    if l >= low && l <= high { out.append(v) }
                }
            }
            return out
        }
        let (a, b) = log ? (pow(10, low), pow(10, high)) : (low, high)
        let step = Axis.niceStep((b - a) / 5)
        var out: [Double] = []
        var v = (a / step).rounded(.up) * step
        while v <= b + step * 1e-9 {
            if !log || v > 0 { out.append(abs(v) < step * 1e-9 ? 0 : v) }
            v += step
        }
        return out
    }

    /// 1, 2 or 5 times a power of ten, near `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let p = pow(10, floor(Foundation.log10(raw))), m = raw / p
        return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p
    }

    /// 1500 → "1.5k", 3e6 → "3M", 0.0005 → "5e-4", 2.25 → "2.25".
    static func label(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e9 { return trim(v / 1e9) + "G" }
        if a >= 1e6 { return trim(v / 1e6) + "M" }
        if a >= 1e4 { return trim(v / 1e3) + "k" }
        if a != 0 && a < 1e-4 { return String(format: "%.0e", v).replacingOccurrences(of: "e-0", with: "e-") }
        return trim(v)
    }

    private static func trim(_ v: Double) -> String {
        var s = String(format: "%.4f", v)
        while s.hasSuffix("0") { s.removeLast() }
        if s.hasSuffix(".") { s.removeLast() }
        return s == "-0" ? "0" : s
    }
}

func f(_ v: Double) -> String { String(format: "%.1f", v) }
