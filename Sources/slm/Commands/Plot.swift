import ArgumentParser
import Foundation
import SLMSupport
import SLMVisual

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw runs' metrics (loss, validation loss, learning rate, …) as one SVG or PNG chart.",
        discussion: """
        One line per run (and per layer for per-layer metrics such as gate_entropy); repeat --metric to \
        draw several on one chart (e.g. --metric loss --metric val_loss). Any number logged in \
        metrics.jsonl can be drawn; the usual ones: \(MetricsChart.known.joined(separator: ", ")). \
        A .png output needs rsvg-convert (Debian: librsvg2-bin) or ImageMagick; the SVG is written beside it.
        """)

    @Argument(help: "Run folders of `slm train` (or metrics.jsonl files).") var runs: [String]
    @Option(help: "The chart: FILE.svg or FILE.png (default: METRIC.svg here).") var out: String?
    @Option(help: "The metric to draw (repeatable).") var metric: [String] = []
    @Option(name: .customLong("x"), help: "The x axis: step, tokens or time (seconds of training).") var axis: MetricsAxis = .step
    @Flag(help: "A logarithmic y axis.") var logY = false
    @Option(help: "The chart's title.") var title: String?

    func run() throws {
        let metrics = metric.isEmpty ? ["loss"] : metric
        let logs = try userFacing { try runs.map { try MetricsLog.read($0) } }
        let chart = MetricsChart.chart(logs, metrics: metrics, x: axis, logY: logY, title: title)
        guard !chart.series.isEmpty else {
            let available = Set(logs.flatMap(\.metricNames)).subtracting(["step", "elapsed", "tokens"]).sorted()
            throw CommandError("no run logged \(metrics.joined(separator: " or ")); these runs logged: \(available.joined(separator: ", "))")
        }
        let target = URL(fileURLWithPath: out ?? metrics.joined(separator: "+") + ".svg")
        let svg = Data(chart.svg().utf8)
        let points = chart.series.reduce(0) { $0 + $1.points.count }
        switch target.pathExtension.lowercased() {
        case "svg":
            try userFacing { try AtomicFile.write(svg, to: target) }
        case "png":
            let svgURL = target.deletingPathExtension().appendingPathExtension("svg")
            try userFacing { try AtomicFile.write(svg, to: svgURL) }
            try convertToPNG(svgURL, target)
        default:
            throw CommandError("--out must end in .svg or .png, not \(target.lastPathComponent)")
        }
        print("wrote \(target.path): \(chart.series.count) line\(chart.series.count == 1 ? "" : "s"), \(points) points")
    }

    /// rsvg-convert, else ImageMagick; a clear message when neither is installed.
    private func convertToPNG(_ svg: URL, _ png: URL) throws {
        let converters: [(String, [String])] = [
            ("rsvg-convert", ["--background-color=white", "-o", png.path, svg.path]),
            ("magick", [svg.path, png.path]),
            ("convert", [svg.path, png.path]),
        ]
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for (tool, arguments) in converters {
            guard let exe = path.map({ "\($0)/\(tool)" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else { continue }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: exe)
            process.arguments = arguments
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CommandError("\(tool) could not turn \(svg.path) into a PNG (exit status \(process.terminationStatus)); the SVG is there")
            }
            return
        }
        throw CommandError("a PNG needs rsvg-convert (Debian: apt-get install librsvg2-bin) or ImageMagick; wrote the chart as \(svg.path)")
    }
}

extension MetricsAxis: ExpressibleByArgument {}
