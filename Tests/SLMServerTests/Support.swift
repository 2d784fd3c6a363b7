import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import SLMGenerate
import SLMModels
import SLMText
import Testing
@testable import SLMServer

/// A loadable model folder in a temporary directory: a GPT-2 over the micro charset.
func makeModelFolder(width: Int = 16, layers: Int = 1, context: Int = 32, name: String = "tiny") throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slm-server-tests-\(UUID().uuidString)")
        .appendingPathComponent(name)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let config = ModelConfig(architecture: .gpt2, vocabSize: 28, layers: layers, heads: 2, width: width, context: context)
    try ModelStore.save(try makeModel(config, seed: 1), to: dir)
    try CharTokenizer(charset: .micro).save(to: dir)
    return dir
}

/// A scheduler on a fresh model folder; shut down when the body returns.
func withScheduler<T>(width: Int = 16, layers: Int = 1, context: Int = 32, maxSessions: Int = 32, maxQueued: Int = 128,
                      _ body: (GenerationScheduler) async throws -> T) async throws -> T {
    let dir = try makeModelFolder(width: width, layers: layers, context: context)
    defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
    let scheduler = GenerationScheduler(bundle: try ModelBundle(directory: dir), maxSessions: maxSessions, maxQueued: maxQueued)
    defer { scheduler.shutdown() }
    return try await body(scheduler)
}

/// The server on a fresh model ("tiny"), driven through HummingbirdTesting's router client.
func withServer<T: Sendable>(apiKey: String? = nil, corsOrigin: String? = nil, width: Int = 16, layers: Int = 1, context: Int = 32,
                             maxSessions: Int = 32, maxQueued: Int = 128, setup: TestingSetup = .router,
                             _ body: @Sendable (any TestClientProtocol, OpenAIServer) async throws -> T) async throws -> T {
    try await withScheduler(width: width, layers: layers, context: context, maxSessions: maxSessions, maxQueued: maxQueued) { scheduler in
        let server = OpenAIServer(scheduler: scheduler, apiKey: apiKey, corsOrigin: corsOrigin)
        let app = Application(router: server.router(), logger: quietLogger)
        return try await app.test(setup) { client in try await body(client, server) }
    }
}

let quietLogger: Logger = {
    var l = Logger(label: "slm-server-tests")
    l.logLevel = .critical
    return l
}()

extension TestClientProtocol {
    /// POSTs a JSON body (a string, sent as is).
    func post(_ uri: String, _ json: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var h = headers
        h[.contentType] = "application/json"
        return try await execute(uri: uri, method: .post, headers: h, body: ByteBuffer(string: json))
    }

    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        try await execute(uri: uri, method: .get, headers: headers)
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body as a JSON object.
    var json: [String: Any] {
        get throws {
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
            return try #require(object as? [String: Any], "not a JSON object: \(text)")
        }
    }

    /// The `data:` payloads of a server-sent event stream, in order.
    var events: [String] {
        text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map { event in
            #expect(event.hasPrefix("data: "), "not a data event: \(event)")
            return String(event.dropFirst("data: ".count))
        }
    }

    /// The JSON events before `[DONE]` (which must come last, once).
    var chunks: [[String: Any]] {
        get throws {
            let all = events
            #expect(all.last == "[DONE]")
            #expect(all.filter { $0 == "[DONE]" }.count == 1)
            return try all.dropLast().map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
        }
    }

    /// The error object of an OpenAI-shaped error response.
    var error: [String: Any] {
        get throws {
            let e = try #require(try json["error"] as? [String: Any], "no error object in \(text)")
            // All four keys are present (null or not), as OpenAI sends them.
            #expect(Set(e.keys) == ["message", "type", "param", "code"])
            return e
        }
    }
}

extension Dictionary where Key == String, Value == Any {
    subscript(path path: String) -> Any? {
        var current: Any? = self
        for part in path.split(separator: ".") {
            if let i = Int(part) {
                guard let list = current as? [Any], i < list.count else { return nil }
                current = list[i]
            } else {
                current = (current as? [String: Any])?[String(part)]
            }
        }
        return current
    }
}

/// Waits until `condition` holds (polling), or fails after `seconds`.
/// (A generous default: with 2 cores, CPU-bound tests of other suites can hold Swift
/// concurrency's threads for many seconds.)
func eventually(_ seconds: Double = 60, _ condition: () -> Bool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline {
            Issue.record("condition not met in \(seconds) s", sourceLocation: sourceLocation)
            return
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}
