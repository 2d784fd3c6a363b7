import ArgumentParser
import Foundation
import Logging
import SLMDashboard
import Synchronization

struct DashboardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "A live page of training runs: loss and validation curves, learning rate, speed, MFU, ETA, samples.",
        discussion: """
        Follows each run's metrics.jsonl (the trainer needs no HTTP) and pushes updates to the page as \
        server-sent events; finished runs show the same way, side by side. A run folder that does not \
        exist yet is shown as waiting. `slm train --dashboard` starts one beside a training run.
        """)

    @Argument(help: "Run folders of `slm train` (or metrics.jsonl files).") var runs: [String]
    @Option(help: "Address to listen on (loopback unless told otherwise).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port; the one chosen is printed).") var port = 8090

    func run() throws {
        guard !runs.isEmpty else { throw ValidationError("name at least one run folder") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        for run in runs where !FileManager.default.fileExists(atPath: run) {
            printError("note: \(run) does not exist yet; the page shows it once its metrics.jsonl appears")
        }
        var logger = Logger(label: "slm.dashboard")
        logger.logLevel = .warning
        let (host, port, runs) = (host, port, runs)
        let done = DispatchSemaphore(value: 0)
        let failure = ErrorBox()
        Task {
            do {
                try await Dashboard(runs: runs).run(host: host, port: port, logger: logger) { bound in
                    print("dashboard of \(runs.count) run\(runs.count == 1 ? "" : "s") on http://\(host):\(bound)/")
                }
            } catch {
                failure.error.withLock { $0 = error }
            }
            done.signal()
        }
        done.wait()
        if let error = failure.error.withLock({ $0 }) { throw CommandError("the dashboard stopped: \(error)") }
    }
}
