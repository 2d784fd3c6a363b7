import Foundation
import Hummingbird
import Logging
import NIOCore

/// `slm dashboard`: a page that follows training runs' metrics.jsonl files. GET / is the
/// page; GET /events streams a snapshot (figures and SVG charts) as a server-sent event
/// whenever a run's metrics grow; GET /snapshot answers the current one once.
public struct Dashboard: Sendable {
    public let runs: [String]
    /// How often the files are checked for new lines.
    public var poll: Duration = .milliseconds(500)

    public init(runs: [String]) {
        self.runs = runs
    }

    func followers() -> [RunFollower] {
        runs.map { path in
            var f = RunFollower(path: path)
            _ = f.update()
            return f
        }
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
        }
        router.get("/snapshot") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"],
                     body: .init(byteBuffer: ByteBuffer(data: try JSONEncoder().encode(Snapshot(followers())))))
        }
        let poll = poll, runs = runs
        router.get("/events") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: ResponseBody { writer in
                var followers = runs.map { RunFollower(path: $0) }
                var first = true
                var quietPolls = 0
                let encoder = JSONEncoder()
                while !Task.isCancelled {
                    var changed = first
                    for i in followers.indices where followers[i].update() { changed = true }
                    if changed {
                        let json = try encoder.encode(Snapshot(followers))
                        var buffer = ByteBuffer(string: "event: snapshot\ndata: ")
                        buffer.writeBytes(json)
                        buffer.writeString("\n\n")
                        try await writer.write(buffer)
                        (first, quietPolls) = (false, 0)
                    } else {
                        // A comment now and then finds out when the page has gone.
                        quietPolls += 1
                        if quietPolls % 30 == 0 { try await writer.write(ByteBuffer(string: ": still here\n\n")) }
                    }
                    try await Task.sleep(for: poll)
                }
                try await writer.finish(nil)
            })
        }
        return router
    }

    /// Serves on `host:port` until the process is interrupted; `onRunning` hears the port.
    public func run(host: String, port: Int, logger: Logger, onRunning: @escaping @Sendable (Int) -> Void) async throws {
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "swift-slm-dashboard"),
                              onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) }, logger: logger)
        try await app.runService()
    }
}
