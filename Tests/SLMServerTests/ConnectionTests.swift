import Foundation
import Logging
import ServiceLifecycle
import Testing
@testable import SLMServer
#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection to a server on the loopback, for what happens below HTTP.
final class RawConnection: @unchecked Sendable {  // (one task uses it at a time)
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    deinit { close(fd) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }

    /// What arrives until the server closes the connection or `seconds` pass; `closed`
    /// says which. `until` stops reading early once the text contains it. The blocking
    /// reads run on a thread of their own: on Swift concurrency's few threads they could
    /// keep the server's own tasks from running.
    func read(seconds: Double = 60, until marker: String? = nil) async -> (text: String, closed: Bool) {
        await withCheckedContinuation { done in
            Thread.detachNewThread { done.resume(returning: self.readBlocking(seconds: seconds, until: marker)) }
        }
    }

    private func readBlocking(seconds: Double, until marker: String?) -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(max(1, deadline.timeIntervalSinceNow * 1000)))
            if ready <= 0 { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received += buffer[0..<n]
            if let marker, String(decoding: received, as: UTF8.self).contains(marker) { break }
        }
        return (String(decoding: received, as: UTF8.self), false)
    }
}

/// The server listening on a free loopback port, run as `slm serve` runs it (a service
/// group); stopped gracefully when the body returns.
func withLiveServer<T>(limits: ConnectionLimits, width: Int = 16, layers: Int = 1, context: Int = 32,
                       _ body: (Int, OpenAIServer, ServiceGroup) async throws -> T) async throws -> T {
    try await withScheduler(width: width, layers: layers, context: context) { scheduler in
        let server = OpenAIServer(scheduler: scheduler, limits: limits)
        let (ports, port) = AsyncStream.makeStream(of: Int.self)
        let group = server.serviceGroup(host: "127.0.0.1", port: 0, logger: quietLogger) { port.yield($0) }
        let running = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        let bound = try #require(await iterator.next())
        do {
            let result = try await body(bound, server, group)
            await group.triggerGracefulShutdown()
            try await running.value
            return result
        } catch {
            running.cancel()
            throw error
        }
    }
}

private func get(_ path: String) -> String { "GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n" }

private func post(_ path: String, _ body: String) -> String {
    "POST \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

@Suite(.timeLimit(.minutes(2))) struct ConnectionTests {
    /// Beyond the cap, a connection's request gets 503 in OpenAI's shape and the
    /// connection is closed; once a place is free, new connections are served again.
    @Test func connectionsBeyondTheCapGet503() async throws {
        var limits = ConnectionLimits()
        limits.maxConnections = 2
        try await withLiveServer(limits: limits) { port, server, _ in
            var first: RawConnection? = try RawConnection(port: port)
            let second = try RawConnection(port: port)
            try await eventually { server.openConnections == 2 }
            let third = try RawConnection(port: port)
            third.send(get("/health"))
            let refused = await third.read()
            #expect(refused.text.hasPrefix("HTTP/1.1 503"))
            #expect(refused.text.contains("too_many_connections") && refused.text.lowercased().contains("retry-after: 1"))
            #expect(refused.closed)
            first = nil
            _ = first
            try await eventually { server.openConnections == 1 }
            let fourth = try RawConnection(port: port)
            fourth.send(get("/health"))
            #expect(await fourth.read(until: "\"ok\"").text.hasPrefix("HTTP/1.1 200"))
            second.send(get("/health"))
            #expect(await second.read(until: "\"ok\"").text.hasPrefix("HTTP/1.1 200"))
        }
    }

    /// A request that does not arrive complete in time, and a connection left idle, are
    /// closed; a response that takes longer than the limit is not cut.
    @Test func slowAndIdleConnectionsAreClosed() async throws {
        var limits = ConnectionLimits()
        limits.requestTimeout = .milliseconds(300)
        try await withLiveServer(limits: limits, width: 64, layers: 2, context: 128) { port, server, _ in
            let slow = try RawConnection(port: port)
            slow.send("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n")  // and never the rest
            let idle = try RawConnection(port: port)
            let partialBody = try RawConnection(port: port)
            partialBody.send("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"model\":")
            for c in [slow, idle, partialBody] {
                let r = await c.read()
                #expect(r.closed)
                #expect(!r.text.contains("200 OK"))
            }
            // A whole request is served, then the connection idles and is closed.
            let served = try RawConnection(port: port)
            served.send(post("/v1/completions", #"{"model": "tiny", "prompt": "a", "max_tokens": 4096, "stream": true}"#))
            let r = await served.read()
            #expect(r.text.hasPrefix("HTTP/1.1 200"))
            #expect(r.text.contains("data: [DONE]"))
            #expect(r.closed)
            try await eventually { server.openConnections == 0 }
        }
    }

    /// SIGTERM's path: while the scheduler drains, a running stream goes on to its end,
    /// new generation requests get 503 and /health says "draining"; then the server stops.
    @Test func gracefulStopFinishesRunningStreams() async throws {
        // A grace the stream's 4,096 tokens fit in also under ThreadSanitizer (~10× slower).
        var limits = ConnectionLimits()
        limits.shutdownGrace = .seconds(100)
        try await withLiveServer(limits: limits, width: 64, layers: 2, context: 128) { port, server, group in
            let stream = try RawConnection(port: port)
            stream.send(post("/v1/completions", #"{"model": "tiny", "prompt": "a", "max_tokens": 4096, "stream": true}"#))
            #expect(await stream.read(until: "data: {").text.hasPrefix("HTTP/1.1 200"))
            let stopping = Task { await group.triggerGracefulShutdown() }
            try await eventually { server.scheduler.isStopping }
            let late = try RawConnection(port: port)
            late.send(post("/v1/completions", #"{"model": "tiny", "prompt": "a", "max_tokens": 3}"#))
            #expect(await late.read(until: "}}").text.hasPrefix("HTTP/1.1 503"))
            let health = try RawConnection(port: port)
            health.send(get("/health"))
            #expect(await health.read(until: "}").text.contains("draining"))
            let rest = await stream.read()
            #expect(rest.text.contains("\"finish_reason\":\"length\"") && rest.text.contains("data: [DONE]"))
            await stopping.value
        }
    }
}
