import Foundation
import Hummingbird
import Synchronization

/// The server's counters and histograms, written in Prometheus' text format at /metrics.
public final class ServerMetrics: Sendable {
    /// Upper bounds (seconds) of the latency buckets.
    static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    struct Histogram {
        var buckets = [Int](repeating: 0, count: ServerMetrics.latencyBuckets.count)
        var sum = 0.0
        var count = 0

        mutating func observe(_ seconds: Double) {
            for (i, bound) in ServerMetrics.latencyBuckets.enumerated() where seconds <= bound { buckets[i] += 1 }
            sum += seconds
            count += 1
        }
    }

    struct RouteStatus: Hashable, Comparable {
        var route: String
        var status: Int
        static func < (a: Self, b: Self) -> Bool { (a.route, a.status) < (b.route, b.status) }
    }

    struct State {
        var requests: [RouteStatus: Int] = [:]
        var latency: [String: Histogram] = [:]
        var timeToFirstToken = Histogram()
        var promptTokens = 0
        var generatedTokens = 0
    }

    private let state = Mutex(State())

    public init() {}

    func recordRequest(route: String, status: Int, seconds: Double) {
        state.withLock {
            $0.requests[RouteStatus(route: route, status: status), default: 0] += 1
            $0.latency[route, default: Histogram()].observe(seconds)
        }
    }

    func recordFirstToken(seconds: Double) {
        state.withLock { $0.timeToFirstToken.observe(seconds) }
    }

    func recordTokens(prompt: Int, generated: Int) {
        state.withLock {
            $0.promptTokens += prompt
            $0.generatedTokens += generated
        }
    }

    /// The Prometheus exposition text; `activeSessions` is read from the scheduler.
    func render(activeSessions: Int) -> String {
        let s = state.withLock { $0 }
        var out = ""
        out += "# HELP slm_requests_total HTTP requests by route and status.\n# TYPE slm_requests_total counter\n"
        for key in s.requests.keys.sorted() {
            out += "slm_requests_total{route=\"\(escape(key.route))\",status=\"\(key.status)\"} \(s.requests[key]!)\n"
        }
        out += "# HELP slm_request_duration_seconds Time from request to the end of the response body.\n"
        out += "# TYPE slm_request_duration_seconds histogram\n"
        for route in s.latency.keys.sorted() {
            out += histogramLines("slm_request_duration_seconds", s.latency[route]!, labels: "route=\"\(escape(route))\"")
        }
        out += "# HELP slm_time_to_first_token_seconds Time from request to the first generated token.\n"
        out += "# TYPE slm_time_to_first_token_seconds histogram\n"
        out += histogramLines("slm_time_to_first_token_seconds", s.timeToFirstToken, labels: "")
        out += "# HELP slm_prompt_tokens_total Prompt tokens read.\n# TYPE slm_prompt_tokens_total counter\n"
        out += "slm_prompt_tokens_total \(s.promptTokens)\n"
        out += "# HELP slm_generated_tokens_total Tokens generated.\n# TYPE slm_generated_tokens_total counter\n"
        out += "slm_generated_tokens_total \(s.generatedTokens)\n"
        out += "# HELP slm_active_sessions Generations queued or running.\n# TYPE slm_active_sessions gauge\n"
        out += "slm_active_sessions \(activeSessions)\n"
        return out
    }

    private func histogramLines(_ name: String, _ h: Histogram, labels: String) -> String {
        let prefix = labels.isEmpty ? "" : labels + ","
        var out = ""
        for (i, bound) in Self.latencyBuckets.enumerated() {
            out += "\(name)_bucket{\(prefix)le=\"\(bound)\"} \(h.buckets[i])\n"
        }
        out += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(h.count)\n"
        let suffix = labels.isEmpty ? "" : "{\(labels)}"
        out += "\(name)_sum\(suffix) \(h.sum)\n"
        out += "\(name)_count\(suffix) \(h.count)\n"
        return out
    }

    private func escape(_ label: String) -> String {
        label.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// Counts every request by route and status and times it to the end of its body (for a
/// stream, its last event). Outermost, so it sees the status errors were mapped to.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let metrics = self.metrics
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            metrics.recordRequest(route: context.endpointPath ?? "unknown", status: 500, seconds: start.secondsSince)
            throw error
        }
        let route = context.endpointPath ?? "unknown"
        let status = response.status.code
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            do {
                try await body.write(writer)
                metrics.recordRequest(route: route, status: status, seconds: start.secondsSince)
            } catch {
                metrics.recordRequest(route: route, status: status, seconds: start.secondsSince)
                throw error
            }
        }
        return response
    }
}

extension ContinuousClock.Instant {
    var secondsSince: Double {
        let d = ContinuousClock.now - self
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}
