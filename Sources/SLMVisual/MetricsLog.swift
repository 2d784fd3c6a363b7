import Foundation

/// One line of a run's metrics.jsonl: its numbers, its per-layer lists (a Symbio model's
/// gate entropy per layer) and its texts (a sample, a skipped step's reason).
public struct MetricsRecord: Sendable, Equatable {
    public var numbers: [String: Double] = [:]
    public var lists: [String: [Double]] = [:]
    public var texts: [String: String] = [:]

    public init(numbers: [String: Double] = [:], lists: [String: [Double]] = [:], texts: [String: String] = [:]) {
        self.numbers = numbers
        self.lists = lists
        self.texts = texts
    }

    /// Parses one JSON object; nil for a line that is not one (a line cut short while
    /// the trainer writes it is read again when it is complete).
    public init?(line: some StringProtocol) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
        for (key, value) in object {
            if let n = value as? NSNumber {
                numbers[key] = n.doubleValue
            } else if let s = value as? String {
                texts[key] = s
            } else if let a = value as? [NSNumber] {
                lists[key] = a.map(\.doubleValue)
            }
        }
    }

    public var step: Int? { numbers["step"].map { Int($0) } }
}

/// Where a chart's x values come from.
public enum MetricsAxis: String, CaseIterable, Sendable {
    case step, tokens, time

    public var label: String {
        switch self {
        case .step: "step"
        case .tokens: "tokens seen"
        case .time: "training time (s)"
        }
    }
}

/// A run's metrics.jsonl, read whole or followed as it grows.
public struct MetricsLog: Sendable {
    /// The run's name in legends: its folder's name.
    public var run: String
    public private(set) var records: [MetricsRecord] = []

    public init(run: String, records: [MetricsRecord] = []) {
        self.run = run
        self.records = records
    }

    /// A run folder (holding metrics.jsonl) or the metrics file itself.
    public static func file(for path: String) -> URL {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            return url.appendingPathComponent("metrics.jsonl")
        }
        return url
    }

    /// The run's name: its folder's, also when the path names metrics.jsonl itself.
    public static func runName(for path: String) -> String {
        let file = self.file(for: path)
        return file.lastPathComponent == "metrics.jsonl" ? file.deletingLastPathComponent().lastPathComponent
            : file.deletingPathExtension().lastPathComponent
    }

    public static func read(_ path: String) throws -> MetricsLog {
        let url = file(for: path)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw VisualError("\(path): no metrics.jsonl here (give a run folder of `slm train`, or the file itself)")
        }
        let text = try String(contentsOf: url, encoding: .utf8)
        var log = MetricsLog(run: runName(for: path))
        log.append(text.split(separator: "\n"))
        return log
    }

    public mutating func append(_ lines: [Substring]) {
        records += lines.compactMap { MetricsRecord(line: $0) }
    }

    /// Tokens per optimizer step, from the first training record that has both.
    var tokensPerStep: Double? {
        for r in records {
            if let t = r.numbers["tokens"], let s = r.numbers["step"], s > 0 { return t / s }
        }
        return nil
    }

    /// The metric against `axis`: one series, or one per layer for a per-layer metric.
    /// A resumed run that went back to an earlier step drops the points it replaced, so
    /// the line shows what the run's history is now.
    public func series(_ metric: String, x axis: MetricsAxis) -> [(name: String, points: [ChartPoint])] {
        let perStep = tokensPerStep
        var single: [ChartPoint] = []
        var layered: [[ChartPoint]] = []
        for r in records {
            let x: Double?
            switch axis {
            case .step: x = r.numbers["step"]
            case .time: x = r.numbers["elapsed"]
            case .tokens: x = r.numbers["tokens"] ?? r.numbers["step"].flatMap { s in perStep.map { s * $0 } }
            }
            guard let x, x.isFinite else { continue }
            if let y = r.numbers[metric] {
                Self.add(ChartPoint(x: x, y: y), to: &single)
            } else if let ys = r.lists[metric] {
                while layered.count < ys.count { layered.append([]) }
                for (i, y) in ys.enumerated() { Self.add(ChartPoint(x: x, y: y), to: &layered[i]) }
            }
        }
        if !layered.isEmpty { return layered.enumerated().map { (name: "\(run) layer \($0.offset)", points: $0.element) } }
        return single.isEmpty ? [] : [(name: run, points: single)]
    }

    private static func add(_ p: ChartPoint, to points: inout [ChartPoint]) {
        guard p.y.isFinite else { return }
        if let last = points.last, p.x <= last.x { points.removeAll { $0.x >= p.x } }
        points.append(p)
    }

    /// The last value the run logged for `metric`.
    public func latest(_ metric: String) -> Double? { records.last { $0.numbers[metric] != nil }?.numbers[metric] }
    public func latestText(_ key: String) -> String? { records.last { $0.texts[key] != nil }?.texts[key] }
    public func latestList(_ key: String) -> [Double]? { records.last { $0.lists[key] != nil }?.lists[key] }

    /// The metrics this log holds (numbers and per-layer lists), sorted; the start
    /// record's facts (total steps, parameters, …) are not metrics.
    public var metricNames: [String] {
        Set(records.filter { $0.texts["event"] == nil }.flatMap { Array($0.numbers.keys) + Array($0.lists.keys) }).sorted()
    }
}

public struct VisualError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
