import ArgumentParser
import Foundation
import Logging
import SLMGenerate
import SLMServer
import SLMTensor
import SLMSupport

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over HTTP with OpenAI's completions and chat completions APIs.",
        discussion: """
        Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (stream: true \
        for server-sent events), GET /health, GET /metrics (Prometheus), GET / (a chat page). \
        With --api-key, /v1/* needs 'Authorization: Bearer KEY'. SIGTERM stops the server \
        gracefully: new generation requests get 503 and /health says "draining" while running \
        generations go on for up to --shutdown-grace seconds; then they are cut and the server \
        closes. SIGINT (Ctrl-C) stops at once, also during that grace. Small models \
        often generate faster with --threads 1: waking a second thread for each operation can \
        cost more than it saves.
        """)

    @Option(help: "Checkpoint or model folder.") var model: String
    @Option(help: "Address to listen on (loopback unless told otherwise).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port; the one chosen is printed).") var port = 8080
    @Option(help: "Require this key as 'Authorization: Bearer KEY' on /v1/* (default: SLM_API_KEY if set).") var apiKey: String?
    @Option(help: "The model's id in the API (default: the folder's name).") var modelName: String?
    @Option(help: "Let browser pages of this origin call the API (e.g. http://localhost:5173; * for any). Off by default.")
    var corsOrigin: String?
    @Option(help: "Generations that run at once (each choice of a request is one).") var maxSessions = 32
    @Option(help: "Generations that may wait for a slot; beyond, requests get 429 with Retry-After.") var maxQueue = 128
    @Option(help: "Most prompt tokens a generation reads per turn; while others stream, prompts join their batched step, as many tokens as there are streams (at least 4), so that their gaps between tokens grow about 2× at most (0: whole prompts at once).")
    var prefillChunk = GenerationScheduler.defaultPrefillChunk
    @Option(help: "Open connections at most; beyond, a connection's request gets 503 with Retry-After.") var maxConnections = 256
    @Option(help: "Seconds a client has to send a complete request (head and body) once its connection is ready; slower or idle connections are closed.")
    var requestTimeout = 30.0
    @Option(help: "Seconds running generations may go on after SIGTERM before they are cut.") var shutdownGrace = 30.0
    @Option(help: "Most MiB of freed tensor buffers kept for reuse; beyond, buffers go back to the system.")
    var bufferCacheMb = 256
    @Flag(inversion: .prefixedNo, help: "Step concurrent generations together: one matrix product per weight for all of them (fp32 GPT-2 and LLaMA); --no-batching steps them one by one.")
    var batching = true
    @OptionGroup var decode: DecodeOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxSessions >= 1, maxQueue >= 0 else { throw ValidationError("--max-sessions must be at least 1 and --max-queue at least 0") }
        guard prefillChunk >= 0 else { throw ValidationError("--prefill-chunk must be 0 (off) or more") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard requestTimeout > 0, requestTimeout.isFinite else { throw ValidationError("--request-timeout must be a positive number of seconds") }
        guard shutdownGrace >= 0, shutdownGrace.isFinite else { throw ValidationError("--shutdown-grace must be 0 or more seconds") }
        guard (0...(1 << 30)).contains(bufferCacheMb) else { throw ValidationError("--buffer-cache-mb must be 0 or more") }
        BufferCache.limitBytes = bufferCacheMb << 20
        var limits = ConnectionLimits()
        limits.maxConnections = maxConnections
        limits.requestTimeout = .milliseconds(Int64(requestTimeout * 1000))
        limits.shutdownGrace = .milliseconds(Int64(shutdownGrace * 1000))
        let key = apiKey ?? ProcessInfo.processInfo.environment["SLM_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let bundle = try loadBundle(model)
        let kvCache = decode.kvCacheFormat
        let scheduler = GenerationScheduler(bundle: bundle, name: modelName, precision: try decode.precision(for: bundle.model),
                                            kvCache: kvCache, maxSessions: maxSessions, maxQueued: maxQueue,
                                            prefillChunk: prefillChunk == 0 ? nil : prefillChunk, batching: batching)
        let server = OpenAIServer(scheduler: scheduler, apiKey: key, corsOrigin: corsOrigin, limits: limits)
        var logger = Logger(label: "slm.serve")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
        let (host, name, parameters) = (host, scheduler.modelName, scheduler.parameterCount)
        // Each running generation holds one full-context state; queued ones hold none yet.
        let stateMB = Double(bundle.model.makeInferenceState().byteCount) / 1_048_576 * Double(kvCache.bytesPerValue) / 4
        let bounds = String(format: "memory beyond the weights: at most %d sessions × %.1f MiB of decoding state (%@ KV cache), and %d MiB of cached buffers",
                            maxSessions, stateMB, kvCache.rawValue, bufferCacheMb)

        // The command is synchronous: the server runs in a task while this thread waits.
        let failure = ErrorBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                try await server.run(host: host, port: port, logger: logger) { bound in
                    print("serving \(name) (\(parameters) parameters) on http://\(host):\(bound)\(key == nil ? "" : " (API key required)")")
                    print(bounds)
                }
            } catch {
                failure.error.withLock { $0 = error }
            }
            done.signal()
        }
        done.wait()
        if let error = failure.error.withLock({ $0 }) { throw CommandError("the server stopped: \(error)") }
        print("server stopped")
    }
}

/// Carries a server's error from its task to the waiting command.
final class ErrorBox: Sendable {
    let error = Locked<(any Error)?>(nil)
}
