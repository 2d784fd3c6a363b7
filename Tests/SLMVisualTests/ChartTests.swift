import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import SLMVisual
import Testing

/// The elements of an XML document, in order, with their attributes; throws unless it is well-formed.
final class Elements: NSObject, XMLParserDelegate {
    var found: [(name: String, attributes: [String: String])] = []

    static func of(_ xml: String) throws -> [(name: String, attributes: [String: String])] {
        let parser = XMLParser(data: Data(xml.utf8))
        let elements = Elements()
        parser.delegate = elements
        guard parser.parse() else { throw VisualError("not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")") }
        return elements.found
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String]) {
        found.append((name, attributes))
    }
}

/// Parses an SVG as XML (failing the test if it is not well-formed) and returns its polylines' point lists.
func polylines(_ svg: String) throws -> [(series: String, points: [(Double, Double)])] {
    try Elements.of(svg).filter { $0.name == "polyline" }.map { element in
        let points = (element.attributes["points"] ?? "").split(separator: " ").map { pair in
            let xy = pair.split(separator: ",").compactMap { Double($0) }
            return (xy[0], xy[1])
        }
        return (element.attributes["data-series"] ?? "", points)
    }
}

func write(_ lines: [String], to dir: URL, run: String) throws -> String {
    let folder = dir.appendingPathComponent(run)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try (lines.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("metrics.jsonl"), atomically: true, encoding: .utf8)
    return folder.path
}

func scratch() -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slm-visual-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct ChartTests {
    /// Two runs' loss: one line each, with as many points as each logged, in step order.
    @Test func oneLinePerRunWithEveryPoint() throws {
        let dir = scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try write([#"{"event":"start","step":0,"total_steps":5,"tokens_per_step":64}"#]
            + (1...5).map { #"{"step":\#($0),"loss":\#(3.0 - Double($0) * 0.2),"lr":0.001,"tokens":\#($0 * 64),"elapsed":\#($0)}"# }
            + [#"{"step":5,"val_loss":2.1,"val_ppl":8.2,"elapsed":5.5}"#], to: dir, run: "a")
        let b = try write((1...3).map { #"{"step":\#($0 * 2),"loss":\#(2.5 - Double($0) * 0.1),"tokens":\#($0 * 256)}"# }, to: dir, run: "b")
        let logs = try [a, b].map { try MetricsLog.read($0) }
        let lines = try polylines(MetricsChart.chart(logs, metrics: ["loss"], x: .step).svg())
        #expect(lines.map(\.series) == ["a", "b"])
        #expect(lines.map(\.points.count) == [5, 3])
        // Higher loss is drawn higher up (smaller y), later steps further right.
        let first = lines[0].points
        #expect(zip(first, first.dropFirst()).allSatisfy { $0.0 < $1.0 && $0.1 < $1.1 })
        // Loss and validation loss together: four lines, the validation one with one point.
        let both = try polylines(MetricsChart.chart(logs, metrics: ["loss", "val_loss"], x: .tokens).svg())
        #expect(both.map(\.series) == ["a loss", "a val_loss", "b loss"])
        #expect(both.map(\.points.count) == [5, 1, 3])
        // The validation point sits at 5 steps × 64 tokens: the same x as the last training point.
        #expect(abs(both[1].points[0].0 - both[0].points[4].0) < 0.01)
    }

    /// A per-layer metric draws one line per layer.
    @Test func perLayerMetricsDrawALinePerLayer() throws {
        let dir = scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = try write((1...4).map { #"{"step":\#($0 * 10),"val_loss":2.0,"gate_entropy":[1.0,\#(1.0 - Double($0) * 0.1),0.5]}"# },
                            to: dir, run: "symbio")
        let lines = try polylines(MetricsChart.chart([try MetricsLog.read(run)], metrics: ["gate_entropy"], x: .step).svg())
        #expect(lines.map(\.series) == ["symbio layer 0", "symbio layer 1", "symbio layer 2"])
        #expect(lines.allSatisfy { $0.points.count == 4 })
    }

    /// A run resumed from an earlier checkpoint logs steps again: the chart keeps the newer ones.
    @Test func aResumedRunReplacesTheStepsItRedid() throws {
        var log = MetricsLog(run: "r")
        log.append([1, 2, 3, 4, 2, 3].enumerated().map { #"{"step":\#($1),"loss":\#($0)}"# }.map { Substring($0) })
        let points = try #require(log.series("loss", x: .step).first).points
        #expect(points.map(\.x) == [1, 2, 3])
        #expect(points.map(\.y) == [0, 4, 5])
    }

    /// Names with markup stay text; non-positive values leave a log chart; empty charts say so.
    @Test func chartsStayWellFormed() throws {
        let series = LineChart.Series(name: "<run & \"co\">", points: [ChartPoint(x: 0, y: 0), ChartPoint(x: 1, y: 0.01), ChartPoint(x: 2, y: 100)])
        let svg = LineChart(title: "t < u", xLabel: "step", yLabel: "loss", series: [series], logY: true).svg()
        let lines = try polylines(svg)
        #expect(lines.count == 1 && lines[0].series == "<run & \"co\">" && lines[0].points.count == 2)
        #expect(svg.contains(">100<") && svg.contains(">0.01<"))
        let empty = LineChart(title: "x", xLabel: "step", yLabel: "loss", series: []).svg()
        #expect(try polylines(empty).isEmpty && empty.contains("no data yet"))
    }

    @Test func ticksAreRoundNumbers() {
        #expect(Axis.niceStep(0.23) == 0.2 && Axis.niceStep(7) == 5 && Axis.niceStep(1300) == 1000)
        let ticks = Axis(low: 1.37, high: 3.91, log: false).ticks()
        #expect(ticks == [1.5, 2, 2.5, 3, 3.5, 4])   // the range is padded by 4% on each side
        #expect(Axis(low: 1e-5, high: 1e-2, log: true).ticks().contains(1e-3))
        #expect(Axis.label(1500) == "1500" && Axis.label(25000) == "25k" && Axis.label(3e6) == "3M" && Axis.label(0.0005) == "0.0005" && Axis.label(0.00005) == "5e-5")
    }

    /// Heat maps have a cell per matrix entry; the surprisal strip a box per token.
    @Test func mapsAndStripsAreWellFormed() throws {
        let map = Heatmap(title: "attention", rows: 3, columns: 3, values: [1, 0, 0, 0.5, 0.5, 0, 0.2, 0.3, 0.5],
                          rowLabels: ["a", "<", "&"], columnLabels: ["a", "<", "&"]).svg()
        #expect(try Elements.of(map).filter { $0.name == "rect" }.count == 9 + 1)   // the cells and the background
        let strip = SurprisalStrip(title: "s", tokens: ["The", "·soul", "\u{1}"], bits: [.nan, 2.5, 7]).svg()
        let tokens = try Elements.of(strip).filter { $0.attributes["class"] == "token" }
        #expect(tokens.map { $0.attributes["data-bits"] } == ["nan", "2.500000", "7.000000"])
    }
}
