import Foundation
import SLMVisual

/// What the dashboard page shows at one moment, sent to it as one JSON event: each
/// run's figures and the charts, drawn here as SVG by the same code as `slm plot`.
struct Snapshot: Encodable {
    struct Run: Encodable {
        var name: String
        var path: String
        var architecture: String?
        var parameters: Int?
        var step: Int?
        var totalSteps: Int?
        var loss: Double?
        var validationLoss: Double?
        var bestValidationLoss: Double?
        var learningRate: Double?
        var tokensPerSecond: Double?
        var mfu: Double?
        var elapsed: Double?
        /// Seconds left at the latest speed.
        var eta: Double?
        var status: String
        var sample: String?
        var sampleStep: Int?
    }

    var runs: [Run]
    /// Chart id → SVG.
    var charts: [String: String]
    var updated: String

    /// A run that logged nothing for this long while unfinished counts as stopped.
    static let quietSeconds = 120.0

    init(_ followers: [RunFollower], now: Date = Date()) {
        let logs = followers.map(\.log)
        runs = followers.map { Self.run($0, now: now) }
        var charts: [String: String] = [
            "loss": MetricsChart.chart(logs, metrics: ["loss", "val_loss"], x: .step, title: "training and validation loss").svg(),
            "lr": MetricsChart.chart(logs, metrics: ["lr"], x: .step, title: "learning rate").svg(),
            "tokens_per_sec": MetricsChart.chart(logs, metrics: ["tokens_per_sec"], x: .step, title: "training speed").svg(),
            "mfu": MetricsChart.chart(logs, metrics: ["mfu"], x: .step, title: "model FLOPs utilisation").svg(),
        ]
        // Symbio runs: the latest organelle gate weights per layer.
        for log in logs {
            let names = ["conv", "monarch", "long_conv"]
            let lists = names.compactMap { log.latestList("gate_" + $0) }
            guard lists.count == names.count, let layers = lists.first?.count else { continue }
            let rows = (0..<layers).map { l in lists.map { l < $0.count ? $0[l] : 0 } }
            charts["gates:" + log.run] = GateBars(title: "organelle gates per layer — \(log.run)", names: names, layers: rows).svg()
        }
        self.charts = charts
        updated = ISO8601DateFormatter().string(from: now)
    }

    static func run(_ f: RunFollower, now: Date) -> Run {
        let log = f.log
        // JSON has no NaN: a non-finite figure is shown as missing.
        func finite(_ x: Double?) -> Double? { x.flatMap { $0.isFinite ? $0 : nil } }
        let start = log.records.last { $0.texts["event"] == "start" }
        let step = log.records.last { $0.numbers["loss"] != nil || $0.numbers["val_loss"] != nil }?.step
        let total = start?.numbers["total_steps"].map { Int($0) }
        let perStep = start?.numbers["tokens_per_step"]
        let rate = log.latest("tokens_per_sec")
        var eta: Double?
        if let step, let total, let perStep, let rate, rate > 0 { eta = Double(max(total - step, 0)) * perStep / rate }
        let finished = step != nil && total != nil && step! >= total!
        let quiet = f.modified.map { now.timeIntervalSince($0) > quietSeconds } ?? true
        let sampleRecord = log.records.last { $0.texts["sample"] != nil }
        return Run(name: log.run, path: f.path, architecture: start?.texts["architecture"],
                   parameters: start?.numbers["parameters"].map { Int($0) }, step: step, totalSteps: total,
                   loss: finite(log.latest("loss")), validationLoss: finite(log.latest("val_loss")),
                   bestValidationLoss: log.records.compactMap { finite($0.numbers["val_loss"]) }.min(),
                   learningRate: finite(log.latest("lr")), tokensPerSecond: finite(rate), mfu: finite(log.latest("mfu")),
                   elapsed: finite(log.latest("elapsed")), eta: finished ? 0 : finite(eta),
                   status: log.records.isEmpty ? "waiting for metrics" : finished ? "finished" : quiet ? "stopped" : "training",
                   sample: sampleRecord?.texts["sample"], sampleStep: sampleRecord?.step)
    }
}
