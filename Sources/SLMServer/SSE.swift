import Foundation
import Hummingbird
import NIOCore

/// Turns a request's generation events into the events of its stream.
protocol StreamFormatter: Sendable {
    /// Events before any token (chat: the assistant role).
    mutating func opening() -> [ByteBuffer]
    mutating func events(for event: GenerationScheduler.ChoiceEvent) -> [ByteBuffer]
    /// Events after the last choice finished (usage, `[DONE]`).
    mutating func closing() -> [ByteBuffer]
}

/// Server-Sent Events as OpenAI streams them: `data: {json}\n\n` per chunk, and
/// `data: [DONE]\n\n` at the end.
enum SSE {
    static let headers: HTTPFields = [
        .contentType: "text/event-stream",
        .cacheControl: "no-cache",
    ]

    static func event(_ value: some Encodable) -> ByteBuffer {
        let json = (try? jsonEncoder.encode(value)) ?? Data("{}".utf8)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(json.count + 8)
        buffer.writeString("data: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
        return buffer
    }

    static let done = ByteBuffer(string: "data: [DONE]\n\n")

    /// A response that writes each event as the scheduler yields it. However the body
    /// ends (all choices finished, the client gone so a write fails, the task cancelled),
    /// the submission is cancelled, which frees its sessions if they still run.
    static func response<F: StreamFormatter>(_ submission: GenerationScheduler.Submission, formatter: F) -> Response {
        Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { submission.cancel() }
            var formatter = formatter
            for buffer in formatter.opening() { try await writer.write(buffer) }
            for await event in submission.events {
                for buffer in formatter.events(for: event) { try await writer.write(buffer) }
            }
            try Task.checkCancellation()
            for buffer in formatter.closing() { try await writer.write(buffer) }
            try await writer.finish(nil)
        })
    }
}
