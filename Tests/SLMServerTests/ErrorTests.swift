import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import SLMGenerate
import Testing
@testable import SLMServer

@Suite(.timeLimit(.minutes(2))) struct ErrorTests {
    /// Each bad request: its status, error type, param and code.
    struct Case: Sendable, CustomStringConvertible {
        var uri = "/v1/chat/completions"
        var body: String
        var status: HTTPResponse.Status = .badRequest
        var param: String?
        var code: String?
        var description: String { body }
    }

    static let chat = #""model": "tiny", "messages": [{"role": "user", "content": "hi"}]"#

    static let cases: [Case] = [
        Case(body: "{not json"),
        Case(body: ""),
        Case(body: "[1, 2]"),
        Case(body: #"{"model": "tiny", "messages": "hi"}"#, param: "messages", code: "invalid_type"),
        Case(body: #"{\#(chat), "temperature": "hot"}"#, param: "temperature", code: "invalid_type"),
        Case(body: #"{\#(chat), "max_tokens": 2.5}"#, param: "max_tokens", code: "invalid_type"),
        Case(body: #"{\#(chat), "stream": "yes"}"#, param: "stream", code: "invalid_type"),
        Case(body: #"{\#(chat), "stop": 3}"#, param: "stop", code: "invalid_type"),
        Case(body: #"{"model": "tiny", "messages": [{"role": "user", "content": 5}]}"#, param: "messages[0].content", code: "invalid_type"),
        Case(body: #"{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}"#,
             param: "messages[0].content[0].type"),
        Case(body: #"{"model": "tiny", "messages": [{"content": "hi"}]}"#, param: "messages[0].role", code: "missing_required_parameter"),
        Case(body: #"{"model": "tiny", "messages": [{"role": "tool", "content": "hi"}]}"#, param: "messages[0].role"),
        Case(body: #"{"model": "tiny"}"#, param: "messages", code: "missing_required_parameter"),
        Case(body: #"{"model": "tiny", "messages": []}"#, param: "messages"),
        Case(body: #"{"messages": [{"role": "user", "content": "hi"}]}"#, param: "model", code: "missing_required_parameter"),
        Case(body: #"{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}"#, status: .notFound, param: "model",
             code: "model_not_found"),
        Case(body: #"{\#(chat), "max_tokens": 0}"#, param: "max_tokens", code: "invalid_value"),
        Case(body: #"{\#(chat), "max_tokens": 4097}"#, param: "max_tokens", code: "invalid_value"),
        Case(body: #"{\#(chat), "max_completion_tokens": -1}"#, param: "max_completion_tokens", code: "invalid_value"),
        Case(body: #"{\#(chat), "temperature": 2.5}"#, param: "temperature", code: "invalid_value"),
        Case(body: #"{\#(chat), "temperature": -0.1}"#, param: "temperature", code: "invalid_value"),
        Case(body: #"{\#(chat), "top_p": 0}"#, param: "top_p", code: "invalid_value"),
        Case(body: #"{\#(chat), "top_p": 1.5}"#, param: "top_p", code: "invalid_value"),
        Case(body: #"{\#(chat), "top_k": -3}"#, param: "top_k", code: "invalid_value"),
        Case(body: #"{\#(chat), "min_p": 1}"#, param: "min_p", code: "invalid_value"),
        Case(body: #"{\#(chat), "presence_penalty": 3}"#, param: "presence_penalty", code: "invalid_value"),
        Case(body: #"{\#(chat), "frequency_penalty": -2.5}"#, param: "frequency_penalty", code: "invalid_value"),
        Case(body: #"{\#(chat), "n": 0}"#, param: "n", code: "invalid_value"),
        Case(body: #"{\#(chat), "n": 17}"#, param: "n", code: "invalid_value"),
        Case(body: #"{\#(chat), "stop": ["a", "b", "c", "d", "e"]}"#, param: "stop"),
        Case(body: #"{\#(chat), "top_logprobs": 3}"#, param: "logprobs"),
        Case(body: #"{\#(chat), "logprobs": true, "top_logprobs": 21}"#, param: "top_logprobs", code: "invalid_value"),
        Case(body: #"{\#(chat), "logprobs": 3}"#, param: "logprobs", code: "invalid_type"),
        Case(body: #"{\#(chat), "seed": "x"}"#, param: "seed", code: "invalid_type"),
        Case(body: #"{\#(chat), "seed": 99999999999999999999}"#, param: "seed", code: "invalid_type"),
        Case(body: #"{\#(chat), "n": 1.5}"#, param: "n", code: "invalid_type"),
        Case(uri: "/v1/completions", body: #"{"model": "tiny"}"#, param: "prompt", code: "missing_required_parameter"),
        Case(uri: "/v1/completions", body: #"{"model": "tiny", "prompt": 42}"#, param: "prompt", code: "invalid_type"),
        Case(uri: "/v1/completions", body: #"{"model": "tiny", "prompt": ["a", "b"]}"#, param: "prompt"),
        Case(uri: "/v1/completions", body: #"{"model": "tiny", "prompt": "a", "logprobs": 21}"#, param: "logprobs", code: "invalid_value"),
        Case(uri: "/v1/completions", body: #"{"model": "tiny", "prompt": "a", "logprobs": true}"#, param: "logprobs", code: "invalid_type"),
        Case(uri: "/v1/completions", body: #"{"model": "other", "prompt": "a"}"#, status: .notFound, param: "model", code: "model_not_found"),
    ]

    @Test(arguments: cases) func badRequest(_ c: Case) async throws {
        try await withServer { client, server in
            let r = try await client.post(c.uri, c.body)
            #expect(r.status == c.status, "\(r.text)")
            #expect(r.headers[.contentType] == "application/json")
            let e = try r.error
            #expect(e["type"] as? String == "invalid_request_error")
            #expect((e["message"] as? String)?.isEmpty == false)
            #expect((e["param"] as? String) == c.param, "\(r.text)")
            if let code = c.code { #expect(e["code"] as? String == code, "\(r.text)") }
            #expect(server.scheduler.activeSessions == 0)
        }
    }

    @Test func bodyOverOneMiBIs413() async throws {
        try await withServer { client, _ in
            let prompt = String(repeating: "a", count: (1 << 20) + 10)
            let r = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "\#(prompt)"}"#)
            #expect(r.status == .contentTooLarge)
            #expect(try r.error["type"] as? String == "invalid_request_error")
            // Just under the limit is read (the prompt is longer than the context: with
            // truncation asked for, its end is kept).
            let fits = String(repeating: "a ", count: 200_000)
            let ok = try await client.post("/v1/completions",
                                           #"{"model": "tiny", "prompt": "\#(fits)", "max_tokens": 2, "truncate_prompt_tokens": -1}"#)
            #expect(ok.status == .ok)
            #expect(try ok.json[path: "usage.prompt_tokens"] as? Int == 32)
        }
    }

    /// CORS is off by default (no header: browsers refuse other origins); with an origin
    /// configured, preflights are answered without a key and answers carry the header.
    @Test func corsOnlyWhenConfigured() async throws {
        let origin: HTTPFields = [.origin: "http://localhost:5173"]
        try await withServer(apiKey: "k") { client, _ in
            let r = try await client.execute(uri: "/v1/models", method: .get, headers: origin + [.authorization: "Bearer k"])
            #expect(r.status == .ok && r.headers[.accessControlAllowOrigin] == nil)
        }
        try await withServer(apiKey: "k", corsOrigin: "http://localhost:5173") { client, _ in
            let preflight = try await client.execute(uri: "/v1/chat/completions", method: .options,
                                                     headers: origin + [.accessControlRequestMethod: "POST"])
            #expect(preflight.status == .noContent)
            #expect(preflight.headers[.accessControlAllowOrigin] == "http://localhost:5173")
            #expect(preflight.headers[.accessControlAllowHeaders]?.lowercased().contains("authorization") == true)
            let r = try await client.execute(uri: "/v1/models", method: .get, headers: origin + [.authorization: "Bearer k"])
            #expect(r.status == .ok && r.headers[.accessControlAllowOrigin] == "http://localhost:5173")
            // The key is still required for the request itself.
            #expect(try await client.execute(uri: "/v1/models", method: .get, headers: origin).status == .unauthorized)
        }
    }

    /// Beyond the generation slots and the queue, requests get 429 with Retry-After in
    /// OpenAI's error shape.
    @Test func busyServerAnswers429() async throws {
        try await withServer(maxSessions: 1, maxQueued: 0) { client, server in
            let running = server.scheduler.submit(prompt: "a", choices: [GenerationOptions(maxTokens: 100_000_000)])
            #expect(await running.admission() == .admitted(promptTokens: 1))
            let r = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "a", "max_tokens": 2}"#)
            #expect(r.status == .tooManyRequests)
            #expect(r.headers[.retryAfter] == "1")
            #expect(try r.error["code"] as? String == "rate_limit_exceeded")
            running.cancel()
            try await eventually { server.scheduler.activeSessions == 0 }
            #expect(try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "a", "max_tokens": 2}"#).status == .ok)
        }
    }

    /// A prompt longer than the context (32 tokens here) is refused as OpenAI does, for
    /// both routes and streamed or not, unless the request asks to keep only its end;
    /// usage then counts the tokens the model read.
    @Test func promptLongerThanTheContext() async throws {
        try await withServer { client, server in
            let long = String(repeating: "ab", count: 20)   // 40 characters, one token each
            for stream in [false, true] {
                let r = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "\#(long)", "stream": \#(stream)}"#)
                #expect(r.status == .badRequest)
                let e = try r.error
                #expect(e["code"] as? String == "context_length_exceeded" && e["param"] as? String == "prompt")
                #expect((e["message"] as? String)?.contains("maximum context length is 32 tokens. However, your prompt resulted in 40 tokens") == true,
                        "\(r.text)")
            }
            let chat = try await client.post("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "\#(long)"}]}"#)
            #expect(chat.status == .badRequest)
            #expect(try chat.error["code"] as? String == "context_length_exceeded" && chat.error["param"] as? String == "messages")
            // Exactly the context is read; so is a longer prompt cut to its last 5 tokens.
            let exact = String(repeating: "ab", count: 16)
            let fits = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "\#(exact)", "max_tokens": 3}"#)
            #expect(fits.status == .ok)
            #expect(try fits.json[path: "usage.prompt_tokens"] as? Int == 32)
            let cut = try await client.post("/v1/completions",
                                            #"{"model": "tiny", "prompt": "\#(long)", "max_tokens": 3, "truncate_prompt_tokens": 5}"#)
            #expect(cut.status == .ok)
            #expect(try cut.json[path: "usage.prompt_tokens"] as? Int == 5)
            let bad = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "a", "truncate_prompt_tokens": 0}"#)
            #expect(try bad.error["param"] as? String == "truncate_prompt_tokens")
            #expect(server.scheduler.activeSessions == 0)
        }
    }

    @Test func unknownRouteAndMethod() async throws {
        try await withServer { client, _ in
            let r = try await client.get("/v1/nothing")
            #expect(r.status == .notFound)
            #expect(try r.error["message"] as? String == "Invalid URL (GET /v1/nothing).")
            let post = try await client.post("/v2/chat/completions", "{}")
            #expect(post.status == .notFound)
            _ = try post.error
            let method = try await client.get("/v1/chat/completions")
            #expect(method.status == .methodNotAllowed || method.status == .notFound)
            _ = try method.error
        }
    }

    @Test func apiKey() async throws {
        try await withServer(apiKey: "sk-test-123") { client, _ in
            let body = #"{"model": "tiny", "prompt": "a", "max_tokens": 2}"#
            let none = try await client.post("/v1/completions", body)
            #expect(none.status == .unauthorized)
            #expect(try none.error["code"] as? String == "invalid_api_key")
            let wrong = try await client.post("/v1/completions", body, headers: [.authorization: "Bearer sk-test-124"])
            #expect(wrong.status == .unauthorized)
            #expect(try wrong.error["type"] as? String == "invalid_request_error")
            let basic = try await client.post("/v1/completions", body, headers: [.authorization: "Basic sk-test-123"])
            #expect(basic.status == .unauthorized)
            let right = try await client.post("/v1/completions", body, headers: [.authorization: "Bearer sk-test-123"])
            #expect(right.status == .ok)
            #expect(try await client.get("/v1/models").status == .unauthorized)
            #expect(try await client.get("/v1/models", headers: [.authorization: "Bearer sk-test-123"]).status == .ok)
            // Unknown routes are not found with or without the key; probes, metrics and the page stay open.
            #expect(try await client.get("/v1/nothing").status == .notFound)
            #expect(try await client.get("/health").status == .ok)
            #expect(try await client.get("/metrics").status == .ok)
            #expect(try await client.get("/").status == .ok)
        }
    }

    /// No input crashes the server: a batch of odd bodies all get a JSON answer.
    @Test func oddInputsGetAnAnswer() async throws {
        let bodies = [
            "null", "true", "\"x\"", "{}", #"{"model": null}"#, #"{"model": "tiny", "messages": null}"#,
            #"{"model": "tiny", "messages": [null]}"#, #"{"model": "tiny", "messages": [{"role": "user", "content": null}], "max_tokens": 1}"#,
            #"{"model": "tiny", "messages": [{"role": "assistant", "content": ""}], "max_tokens": 1}"#,
            #"{"model": "tiny", "messages": [{"role": "user", "content": "\u0000\ud83d\ude00 é"}], "max_tokens": 2}"#,
            #"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e400}"#,
            #"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "seed": 99999999999999999999}"#,
            #"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "seed": -5, "max_tokens": 1}"#,
            #"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stop": [""], "max_tokens": 1}"#,
            #"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}, "max_tokens": 1}"#,
            #"{"model": "tiny", "prompt": "", "max_tokens": 2}"#,
            String(repeating: "[", count: 300_000) + String(repeating: "]", count: 300_000),  // deep nesting
            #"{"model": "tiny", "messages": "# + String(repeating: #"{"a":"#, count: 100_000) + "1" + String(repeating: "}", count: 100_001),
        ]
        try await withServer { client, _ in
            for body in bodies {
                for uri in ["/v1/chat/completions", "/v1/completions"] {
                    let r = try await client.post(uri, body)
                    #expect(r.status == .ok || r.status == .badRequest, "\(uri) \(body): \(r.status) \(r.text)")
                    #expect(r.headers[.contentType] == "application/json", "\(uri) \(body)")
                    _ = try r.json
                }
            }
        }
    }
}

@Suite(.timeLimit(.minutes(3))) struct ConcurrencyTests {
    /// Two requests at once both complete, and the short one, sent second, finishes first.
    @Test func shortRequestOvertakesLongOne() async throws {
        // The long request must outlast the short one's trip through the router even on a
        // loaded machine: a model slow enough that 4,096 tokens take about a second here.
        try await withServer(width: 96, layers: 3, context: 256) { client, server in
            let order = OrderLog()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let r = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "long", "max_tokens": 4096}"#)
                    #expect(r.status == .ok)
                    #expect(try r.json[path: "usage.completion_tokens"] as? Int == 4096)
                    order.append("long")
                }
                try await eventually { server.scheduler.activeSessions == 1 }
                group.addTask {
                    let r = try await client.post("/v1/chat/completions", """
                        {"model": "tiny", "messages": [{"role": "user", "content": "short"}], "max_tokens": 3, "stream": true}
                        """)
                    #expect(try r.chunks.last?[path: "choices.0.finish_reason"] as? String == "length")
                    order.append("short")
                }
                try await group.waitForAll()
            }
            #expect(order.entries == ["short", "long"])
        }
    }
}

final class OrderLog: @unchecked Sendable {  // (a lock guards entries)
    private let lock = NSLock()
    private var _entries: [String] = []
    func append(_ s: String) { lock.withLock { _entries.append(s) } }
    var entries: [String] { lock.withLock { _entries } }
}
