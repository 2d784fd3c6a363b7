import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
@testable import SLMServer

@Suite(.timeLimit(.minutes(2))) struct RouteTests {
    @Test func health() async throws {
        try await withServer { client, _ in
            let r = try await client.get("/health")
            #expect(r.status == .ok)
            #expect(try r.json["status"] as? String == "ok")
        }
    }

    @Test func models() async throws {
        try await withServer { client, _ in
            let r = try await client.get("/v1/models")
            #expect(r.status == .ok)
            let json = try r.json
            #expect(json["object"] as? String == "list")
            #expect(json[path: "data.0.id"] as? String == "tiny")
            #expect(json[path: "data.0.object"] as? String == "model")
            #expect(json[path: "data.0.owned_by"] as? String != nil)
            #expect(json[path: "data.0.created"] as? Int != nil)
            let one = try await client.get("/v1/models/tiny")
            #expect(one.status == .ok)
            #expect(try one.json["id"] as? String == "tiny")
            let missing = try await client.get("/v1/models/gpt-4")
            #expect(missing.status == .notFound)
            #expect(try missing.error["code"] as? String == "model_not_found")
        }
    }

    @Test func playgroundIsSelfContained() async throws {
        try await withServer { client, _ in
            let r = try await client.get("/")
            #expect(r.status == .ok)
            #expect(r.headers[.contentType]?.hasPrefix("text/html") == true)
            let page = r.text
            #expect(page.contains("/v1/chat/completions") && page.contains("getReader()") && page.contains("stream: true"))
            #expect(!page.contains("<script src") && !page.contains("<link") && !page.contains("https://"))
        }
    }

    @Test func metricsCountRequestsTokensAndLatency() async throws {
        try await withServer { client, _ in
            _ = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "the", "max_tokens": 4}"#)
            _ = try await client.post("/v1/completions", #"{"model": "nope", "prompt": "the"}"#)
            _ = try await client.get("/nowhere")
            let r = try await client.get("/metrics")
            #expect(r.status == .ok)
            #expect(r.headers[.contentType]?.hasPrefix("text/plain") == true)
            let m = r.text
            #expect(m.contains(#"slm_requests_total{route="/v1/completions",status="200"} 1"#))
            #expect(m.contains(#"slm_requests_total{route="/v1/completions",status="404"} 1"#))
            #expect(m.contains(#"status="404"} 1"#))
            #expect(m.contains("slm_generated_tokens_total 4"))
            #expect(m.contains("slm_prompt_tokens_total 3"))
            #expect(m.contains("# TYPE slm_request_duration_seconds histogram"))
            #expect(m.contains(#"slm_request_duration_seconds_count{route="/v1/completions"} 2"#))
            #expect(m.contains("slm_time_to_first_token_seconds_count 1"))
            #expect(m.contains(#"slm_time_to_first_token_seconds_bucket{le="+Inf"} 1"#))
            #expect(m.contains("slm_active_sessions 0"))
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct CompletionTests {
    @Test func chatCompletion() async throws {
        try await withServer(context: 128) { client, _ in
            let r = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
                 "max_tokens": 6, "temperature": 0, "user": "someone", "unknown_field": {"x": 1}}
                """)
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "application/json")
            #expect(r.headers[.connection] == "close")  // (see Routes.closing)
            let json = try r.json
            #expect((json["id"] as? String)?.hasPrefix("chatcmpl-") == true)
            #expect(json["object"] as? String == "chat.completion")
            #expect(json["model"] as? String == "tiny")
            #expect(json["created"] as? Int != nil)
            #expect(json[path: "choices.0.index"] as? Int == 0)
            #expect(json[path: "choices.0.message.role"] as? String == "assistant")
            #expect((json[path: "choices.0.message.content"] as? String)?.isEmpty == false)
            #expect(json[path: "choices.0.finish_reason"] as? String == "length")
            #expect(json[path: "choices.0.logprobs"] is NSNull)
            #expect(json[path: "usage.completion_tokens"] as? Int == 6)
            let prompt = try #require(json[path: "usage.prompt_tokens"] as? Int)
            #expect(prompt > 10)
            #expect(json[path: "usage.total_tokens"] as? Int == prompt + 6)
        }
    }

    @Test func contentAsTextParts() async throws {
        try await withServer { client, _ in
            let parts = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]}],
                 "max_tokens": 5, "temperature": 0}
                """)
            let plain = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5, "temperature": 0}
                """)
            #expect(parts.status == .ok)
            #expect(try parts.json[path: "choices.0.message.content"] as? String == (try plain.json[path: "choices.0.message.content"] as? String))
            #expect(try parts.json[path: "usage.prompt_tokens"] as? Int == (try plain.json[path: "usage.prompt_tokens"] as? Int))
        }
    }

    @Test func textCompletion() async throws {
        try await withServer { client, _ in
            let r = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "the cat", "max_tokens": 9, "seed": 3}"#)
            #expect(r.status == .ok)
            let json = try r.json
            #expect((json["id"] as? String)?.hasPrefix("cmpl-") == true)
            #expect(json["object"] as? String == "text_completion")
            #expect((json[path: "choices.0.text"] as? String)?.isEmpty == false)
            #expect(json[path: "choices.0.finish_reason"] as? String == "length")
            #expect(json[path: "choices.0.logprobs"] is NSNull)
            #expect(json[path: "usage.prompt_tokens"] as? Int == 7)
            #expect(json[path: "usage.completion_tokens"] as? Int == 9)
            #expect(json[path: "usage.total_tokens"] as? Int == 16)
            // The default max_tokens is OpenAI's 16.
            let d = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "a"}"#)
            #expect(try d.json[path: "usage.completion_tokens"] as? Int == 16)
        }
    }

    @Test func sameSeedSameText() async throws {
        try await withServer { client, _ in
            let body = #"{"model": "tiny", "prompt": "a", "max_tokens": 12, "temperature": 1.2, "seed": 42}"#
            let a = try await client.post("/v1/completions", body)
            let b = try await client.post("/v1/completions", body)
            #expect(try a.json[path: "choices.0.text"] as? String == (try b.json[path: "choices.0.text"] as? String))
        }
    }

    @Test func nChoices() async throws {
        try await withServer { client, _ in
            let r = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2, "max_tokens": 8, "temperature": 1.5, "seed": 7}
                """)
            #expect(r.status == .ok)
            let json = try r.json
            let choices = try #require(json["choices"] as? [[String: Any]])
            #expect(choices.count == 2)
            #expect(choices.map { $0["index"] as? Int } == [0, 1])
            let texts = choices.map { $0[path: "message.content"] as? String ?? "" }
            #expect(texts[0] != texts[1], "seeds 7 and 8 should differ")
            #expect(json[path: "usage.completion_tokens"] as? Int == 16)
            // Choice i is the single choice with seed + i.
            let second = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "temperature": 1.5, "seed": 8}
                """)
            #expect(try second.json[path: "choices.0.message.content"] as? String == texts[1])
        }
    }

    @Test func stopStrings() async throws {
        try await withServer { client, _ in
            let free = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "the", "max_tokens": 30, "temperature": 0}"#)
            let text = try #require(try free.json[path: "choices.0.text"] as? String)
            #expect(text.count == 30)
            // Stop at a piece from the middle of that text: the output is what came before.
            let stop = String(text.dropFirst(10).prefix(3))
            let cut = text.range(of: stop)!.lowerBound
            let stopped = try await client.post("/v1/completions", """
                {"model": "tiny", "prompt": "the", "max_tokens": 30, "temperature": 0, "stop": ["qqqq", \(jsonString(stop))]}
                """)
            #expect(try stopped.json[path: "choices.0.text"] as? String == String(text[..<cut]))
            #expect(try stopped.json[path: "choices.0.finish_reason"] as? String == "stop")
            // One string works too.
            let single = try await client.post("/v1/completions", """
                {"model": "tiny", "prompt": "the", "max_tokens": 30, "temperature": 0, "stop": \(jsonString(stop))}
                """)
            #expect(try single.json[path: "choices.0.text"] as? String == String(text[..<cut]))
        }
    }

    @Test func chatLogprobs() async throws {
        try await withServer { client, _ in
            let r = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "logprobs": true, "top_logprobs": 3}
                """)
            #expect(r.status == .ok)
            let content = try #require(try r.json[path: "choices.0.logprobs.content"] as? [[String: Any]])
            #expect(content.count == 5)
            var joined = ""
            for entry in content {
                let token = try #require(entry["token"] as? String)
                joined += token
                let logprob = try #require(entry["logprob"] as? Double)
                #expect(logprob <= 0)
                #expect(entry["bytes"] as? [Int] == Array(token.utf8).map(Int.init))
                let top = try #require(entry["top_logprobs"] as? [[String: Any]])
                #expect(top.count == 3)
                #expect(Set(top[0].keys) == ["token", "logprob", "bytes"])
                let tops = top.compactMap { $0["logprob"] as? Double }
                #expect(tops == tops.sorted(by: >))
                #expect(logprob <= tops[0] + 1e-9)
            }
            // The reply is the tokens' text less leading whitespace.
            #expect(try r.json[path: "choices.0.message.content"] as? String == String(joined.drop(while: \.isWhitespace)))
            // logprobs without alternatives.
            let plain = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "logprobs": true}
                """)
            #expect(try plain.json[path: "choices.0.logprobs.content.0.top_logprobs"] as? [Any] != nil)
            #expect((try plain.json[path: "choices.0.logprobs.content.0.top_logprobs"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func completionLogprobs() async throws {
        try await withServer { client, _ in
            let r = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "the", "max_tokens": 6, "logprobs": 2}"#)
            #expect(r.status == .ok)
            let lp = try #require(try r.json[path: "choices.0.logprobs"] as? [String: Any])
            let tokens = try #require(lp["tokens"] as? [String])
            let logprobs = try #require(lp["token_logprobs"] as? [Double])
            let top = try #require(lp["top_logprobs"] as? [[String: Double]])
            let offsets = try #require(lp["text_offset"] as? [Int])
            #expect(tokens.count == 6 && logprobs.count == 6 && top.count == 6 && offsets.count == 6)
            #expect(top.allSatisfy { $0.count == 2 })
            #expect(offsets == Array(0..<6))  // one character per token
            #expect(tokens.joined() == (try r.json[path: "choices.0.text"] as? String))
        }
    }
}

@Suite(.timeLimit(.minutes(2))) struct StreamingTests {
    @Test func streamedChat() async throws {
        try await withServer { client, _ in
            let body = #"{"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8, "temperature": 0"#
            let r = try await client.post("/v1/chat/completions", body + #", "stream": true}"#)
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "text/event-stream")
            let chunks = try r.chunks
            // Role, one per character (less leading whitespace, which is dropped), finish.
            let range = (1 + 7 + 1)...(1 + 8 + 1)
            #expect(range.contains(chunks.count))
            let id = try #require(chunks[0]["id"] as? String)
            #expect(id.hasPrefix("chatcmpl-"))
            for c in chunks {
                #expect(c["id"] as? String == id)
                #expect(c["object"] as? String == "chat.completion.chunk")
                #expect(c["model"] as? String == "tiny")
                #expect(c["created"] as? Int != nil)
                #expect(c["usage"] == nil)  // not asked for
            }
            #expect(chunks[0][path: "choices.0.delta.role"] as? String == "assistant")
            #expect(chunks[0][path: "choices.0.delta.content"] as? String == "")
            #expect(chunks[0][path: "choices.0.finish_reason"] is NSNull)
            var content = ""
            for c in chunks[1..<chunks.count - 1] {
                let piece = try #require(c[path: "choices.0.delta.content"] as? String)
                #expect(!piece.isEmpty)
                #expect(c[path: "choices.0.delta.role"] == nil)
                #expect(c[path: "choices.0.finish_reason"] is NSNull)
                content += piece
            }
            #expect(content.first?.isWhitespace == false)
            let last = chunks[chunks.count - 1]
            #expect((last[path: "choices.0.delta"] as? [String: Any])?.isEmpty == true)
            #expect(last[path: "choices.0.finish_reason"] as? String == "length")
            // The same text as without streaming.
            let whole = try await client.post("/v1/chat/completions", body + "}")
            #expect(try whole.json[path: "choices.0.message.content"] as? String == content)
        }
    }

    @Test func streamedUsageOnlyWhenAsked() async throws {
        try await withServer { client, _ in
            let r = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "stream": true,
                 "stream_options": {"include_usage": true}}
                """)
            let chunks = try r.chunks
            let usage = try #require(chunks.last)
            #expect((usage["choices"] as? [Any])?.isEmpty == true)
            #expect(usage[path: "usage.completion_tokens"] as? Int == 4)
            #expect(usage[path: "usage.total_tokens"] as? Int == (usage[path: "usage.prompt_tokens"] as? Int ?? 0) + 4)
            for c in chunks.dropLast() { #expect(c["usage"] is NSNull) }
            #expect(chunks.dropLast().last?[path: "choices.0.finish_reason"] as? String == "length")
        }
    }

    @Test func streamedCompletion() async throws {
        try await withServer { client, _ in
            let body = #"{"model": "tiny", "prompt": "the", "max_tokens": 5, "temperature": 0, "stop": "zzz""#
            let r = try await client.post("/v1/completions", body + #", "stream": true, "stream_options": {"include_usage": true}}"#)
            #expect(r.headers[.contentType] == "text/event-stream")
            let chunks = try r.chunks
            var text = ""
            for c in chunks.dropLast(2) {
                #expect((c["id"] as? String)?.hasPrefix("cmpl-") == true)
                #expect(c["object"] as? String == "text_completion")
                #expect(c[path: "choices.0.finish_reason"] is NSNull)
                text += c[path: "choices.0.text"] as? String ?? ""
            }
            let finish = chunks[chunks.count - 2]
            #expect(finish[path: "choices.0.finish_reason"] as? String == "length")
            #expect(finish[path: "choices.0.text"] as? String == "")
            #expect(chunks.last?[path: "usage.completion_tokens"] as? Int == 5)
            let whole = try await client.post("/v1/completions", body + "}")
            #expect(try whole.json[path: "choices.0.text"] as? String == text)
        }
    }

    @Test func streamedChoicesAndLogprobs() async throws {
        try await withServer { client, _ in
            let r = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "stream": true, "n": 2,
                 "logprobs": true, "top_logprobs": 2}
                """)
            let chunks = try r.chunks
            var roles: Set<Int> = [], finished: Set<Int> = [], entries = [0, 0]
            for c in chunks {
                let choice = try #require((c["choices"] as? [[String: Any]])?.first)
                let i = try #require(choice["index"] as? Int)
                if choice[path: "delta.role"] as? String == "assistant" { roles.insert(i) }
                if choice["finish_reason"] as? String == "length" { finished.insert(i) }
                entries[i] += (choice[path: "logprobs.content"] as? [[String: Any]])?.count ?? 0
                if let content = choice[path: "logprobs.content"] as? [[String: Any]] {
                    #expect(content.allSatisfy { ($0["top_logprobs"] as? [Any])?.count == 2 })
                }
            }
            #expect(roles == [0, 1] && finished == [0, 1] && entries == [4, 4])
        }
    }

    /// A client that goes away mid-stream (its writes fail) frees its session at once.
    @Test func disconnectFreesTheSession() async throws {
        try await withScheduler { scheduler in
            let server = OpenAIServer(scheduler: scheduler)
            let responder = server.router().buildResponder()
            let body = #"{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000, "stream": true}"#
            let request = Request(
                head: HTTPRequest(method: .post, scheme: "http", authority: "localhost", path: "/v1/chat/completions",
                                  headerFields: [.contentType: "application/json"]),
                body: RequestBody(buffer: ByteBuffer(string: body)))
            let response = try await responder.respond(to: request, context: ServerContext(logger: quietLogger))
            #expect(response.status == .ok)
            let writer = DisconnectingWriter(failAfter: 3)
            await #expect(throws: DisconnectingWriter.Gone.self) { try await response.body.write(writer) }
            #expect(writer.log.writes == 3)
            try await eventually { scheduler.activeSessions == 0 }
        }
    }

    /// Events go out as they are produced: the writer sees chunks while generation is
    /// still running, not all at the end.
    @Test func chunksAreWrittenWhileGenerating() async throws {
        try await withScheduler(width: 64, layers: 2, context: 128) { scheduler in  // slow enough to watch
            let server = OpenAIServer(scheduler: scheduler)
            let responder = server.router().buildResponder()
            let body = #"{"model": "tiny", "prompt": "a", "max_tokens": 4096, "stream": true}"#
            let request = Request(
                head: HTTPRequest(method: .post, scheme: "http", authority: "localhost", path: "/v1/completions",
                                  headerFields: [.contentType: "application/json"]),
                body: RequestBody(buffer: ByteBuffer(string: body)))
            let response = try await responder.respond(to: request, context: ServerContext(logger: quietLogger))
            let writer = DisconnectingWriter(failAfter: .max) { scheduler.activeSessions }
            try await response.body.write(writer)
            // When the first chunk was written, the session was still generating.
            #expect(writer.log.activeAtFirstWrite == 1)
            #expect(writer.log.writes > 100)
            #expect(writer.log.finished)
        }
    }
}

/// A response writer that records writes and fails (as a closed connection does) after
/// `failAfter` of them.
struct DisconnectingWriter: ResponseBodyWriter {
    struct Gone: Error {}

    final class Log: @unchecked Sendable {  // (touched by one task at a time)
        var writes = 0
        var activeAtFirstWrite: Int?
        var finished = false
    }

    let failAfter: Int
    var probe: (() -> Int)? = nil
    let log = Log()

    mutating func write(_ buffer: ByteBuffer) async throws {
        if log.writes >= failAfter { throw Gone() }
        if log.writes == 0 { log.activeAtFirstWrite = probe?() }
        log.writes += 1
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        log.finished = true
    }
}

func jsonString(_ s: String) -> String {
    String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
}

@Suite(.timeLimit(.minutes(2))) struct ShutdownTests {
    /// Once the scheduler has stopped (SIGTERM), generation requests get 503, streamed or
    /// not (the prompt is admitted before a stream starts), while the rest of the server
    /// still answers.
    @Test func requestsAfterShutdown() async throws {
        try await withServer { client, server in
            server.scheduler.shutdown()
            let r = try await client.post("/v1/completions", #"{"model": "tiny", "prompt": "a", "max_tokens": 3}"#)
            #expect(r.status == .serviceUnavailable)
            #expect(try r.error["type"] as? String == "server_error")
            let s = try await client.post("/v1/chat/completions", """
                {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": true}
                """)
            #expect(s.status == .serviceUnavailable)
            #expect(try s.error["code"] as? String == "service_unavailable")
            // The rest of the server still answers; /health says it is going away.
            let health = try await client.get("/health")
            #expect(health.status == .serviceUnavailable)
            #expect(try health.json["status"] as? String == "draining")
            #expect(try await client.get("/v1/models").status == .ok)
        }
    }
}
