import Foundation

/// Charts of runs' metrics: the metrics slm train logs, with their units.
public enum MetricsChart {
    /// What each logged metric is, for the y axis.
    public static let units: [String: String] = [
        "loss": "training loss (nats/token)",
        "val_loss": "validation loss (nats/token)",
        "val_ppl": "validation perplexity",
        "val_bpc": "validation bits per character",
        "lr": "learning rate",
        "grad_norm": "gradient norm (before clipping)",
        "tokens_per_sec": "training speed (tokens/s)",
        "mfu": "model FLOPs utilisation (fraction of peak)",
        "gate_entropy": "gate entropy per layer (nats)",
        "router_aux": "router balancing loss",
    ]

    /// The metrics `slm plot --metric` offers by name (any other logged one works too).
    public static let known = ["loss", "val_loss", "lr", "grad_norm", "tokens_per_sec", "gate_entropy"]

    /// One line per run and metric (and per layer for per-layer metrics).
    public static func chart(_ logs: [MetricsLog], metrics: [String], x axis: MetricsAxis, logY: Bool = false,
                             title: String? = nil) -> LineChart {
        var series: [LineChart.Series] = []
        for log in logs {
            for metric in metrics {
                for s in log.series(metric, x: axis) {
                    let name = metrics.count > 1 ? "\(s.name) \(metric)" : s.name
                    series.append(LineChart.Series(name: name, points: s.points))
                }
            }
        }
        let yLabel = metrics.count == 1 ? units[metrics[0]] ?? metrics[0]
            : metrics.allSatisfy({ $0.hasSuffix("loss") }) ? "loss (nats/token)" : metrics.joined(separator: ", ")
        let names = logs.map(\.run).joined(separator: ", ")
        return LineChart(title: title ?? "\(metrics.joined(separator: " and ")) — \(names)", xLabel: axis.label, yLabel: yLabel,
                         series: series, logY: logY)
    }

    /// The chart `slm train` keeps in each run folder: training and validation loss by step.
    public static func lossChart(_ log: MetricsLog) -> LineChart {
        var chart = chart([log], metrics: ["loss", "val_loss"], x: .step, title: "loss — \(log.run)")
        for i in chart.series.indices {
            chart.series[i].name = chart.series[i].name.hasSuffix("val_loss") ? "validation" : "training"
        }
        return chart
    }
}
