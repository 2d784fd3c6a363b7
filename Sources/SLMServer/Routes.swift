import Foundation
import Hummingbird
import NIOCore
import SLMGenerate

/// The server's routes: OpenAI's models, completions and chat completions, plus health,
/// metrics and the playground page.
struct Routes: Sendable {
    let scheduler: GenerationScheduler
    let metrics: ServerMetrics
    let connections: ConnectionCount
    /// When the server started (the model's `created`).
    let created = unixTime()

    /// The open routes go straight on the router; every OpenAI route goes through the
    /// `v1` group, whose middleware (the API key) runs inside the endpoint that the router
    /// resolved. A request reaches an API handler only through that check, whatever
    /// spelling of the path the router accepts (`//v1/models`, `/v1/models/`, …).
    func register(on router: Router<ServerContext>, apiKey: String?) {
        // 503 while draining, so that a load balancer sends new work elsewhere.
        router.get("/health") { _, _ in
            scheduler.isStopping ? jsonResponse(["status": "draining"], status: .serviceUnavailable) : jsonResponse(["status": "ok"])
        }
        router.get("/metrics") { _, _ in
            let text = metrics.render(activeSessions: scheduler.activeSessions, openConnections: connections.current)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: Playground.html)))
        }

        let api = router.group("v1")
        if let apiKey { api.add(middleware: APIKeyMiddleware(key: apiKey)) }
        api.get("models") { _, _ in jsonResponse(ModelList(data: [modelInfo])) }
        api.get("models/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard id == scheduler.modelName else { throw APIError.modelNotFound(id) }
            return jsonResponse(modelInfo)
        }
        api.post("completions") { request, context in try await completions(request, context) }
        api.post("chat/completions") { request, context in try await chatCompletions(request, context) }
    }

    var modelInfo: ModelInfo { ModelInfo(id: scheduler.modelName, created: created) }

    // MARK: Generation routes

    func chatCompletions(_ request: Request, _ context: ServerContext) async throws -> Response {
        let started = ContinuousClock.now
        var request = request
        let plan = try validateChat(try await decodeBody(ChatRequest.self, &request), modelName: scheduler.modelName)
        let submission = try await admit(plan)
        if plan.stream {
            let formatter = ChatStreamFormatter(model: scheduler.modelName, plan: GenerationPlanSummary(plan), metrics: metrics, started: started)
            return SSE.response(submission, formatter: formatter)
        }
        let choices = try await collect(submission, plan: plan, request: request, started: started)
        let body = ChatCompletion(
            id: makeResponseID("chatcmpl-"), created: unixTime(), model: scheduler.modelName,
            choices: choices.enumerated().map { i, c in
                .init(index: i, message: AssistantMessage(content: c.chatReply), logprobs: plan.logprobs == nil ? nil : c.chatLogprobs,
                      finishReason: c.result!.finishReason.openAI)
            },
            usage: totalUsage(choices.map { $0.result! }))
        return closing(jsonResponse(body))
    }

    func completions(_ request: Request, _ context: ServerContext) async throws -> Response {
        let started = ContinuousClock.now
        var request = request
        let plan = try validateCompletion(try await decodeBody(CompletionRequest.self, &request), modelName: scheduler.modelName)
        let submission = try await admit(plan)
        if plan.stream {
            let formatter = CompletionStreamFormatter(model: scheduler.modelName, plan: GenerationPlanSummary(plan), metrics: metrics, started: started)
            return SSE.response(submission, formatter: formatter)
        }
        let choices = try await collect(submission, plan: plan, request: request, started: started)
        let body = TextCompletion(
            id: makeResponseID("cmpl-"), created: unixTime(), model: scheduler.modelName,
            choices: choices.enumerated().map { i, c in
                .init(text: c.text, index: i, logprobs: plan.logprobs == nil ? nil : c.completionLogprobs,
                      finishReason: c.result!.finishReason.openAI)
            },
            usage: totalUsage(choices.map { $0.result! }))
        return closing(jsonResponse(body))
    }

    /// Submits the plan and waits until the worker has read the prompt: a prompt longer
    /// than the context is a 400 before any response (or stream) starts.
    private func admit(_ plan: GenerationPlan) async throws -> GenerationScheduler.Submission {
        let submission = scheduler.submit(prompt: plan.prompt, choices: plan.choices, keepLast: plan.keepLast)
        switch await submission.admission() {
        case .admitted:
            return submission
        case .tooLong(let tokens):
            throw APIError.contextLengthExceeded(context: scheduler.contextLength, promptTokens: tokens, param: plan.promptParam)
        case .busy:
            throw APIError.busy
        case nil:
            submission.cancel()
            throw APIError.shuttingDown
        }
    }

    /// Watching for the client to leave (see `collect`) reads the connection past the
    /// request, so Hummingbird closes it after the response: say so, so that clients do
    /// not try to send another request on it.
    private func closing(_ response: Response) -> Response {
        var response = response
        response.headers[.connection] = "close"
        return response
    }

    /// Waits for every choice of a non-streamed request. If the client closes the
    /// connection meanwhile, the wait is cancelled and so are the generations.
    private func collect(_ submission: GenerationScheduler.Submission, plan: GenerationPlan, request: Request,
                         started: ContinuousClock.Instant) async throws -> [ChoiceAccumulator] {
        defer { submission.cancel() }
        let metrics = self.metrics
        let choices = try await request.body.consumeWithCancellationOnInboundClose { _ in
            var choices = Array(repeating: ChoiceAccumulator(), count: plan.choices.count)
            var sawToken = false
            for await e in submission.events {
                if case .token(let t) = e.event, !t.isFlush, !sawToken {
                    sawToken = true
                    metrics.recordFirstToken(seconds: started.secondsSince)
                }
                choices[e.choice].add(e.event)
            }
            return choices
        }
        try Task.checkCancellation()
        if choices.contains(where: { $0.failure != nil }) { throw APIError.shuttingDown }
        guard choices.allSatisfy({ $0.result != nil }) else { throw CancellationError() }
        let results = choices.map { $0.result! }
        metrics.recordTokens(prompt: results[0].promptTokens, generated: results.reduce(0) { $0 + $1.completionTokens })
        return choices
    }

    /// Reads at most `ServerLimits.maxBodyBytes` and decodes JSON, turning decoding
    /// errors into 400s that name the field.
    private func decodeBody<T: Decodable>(_ type: T.Type, _ request: inout Request) async throws -> T {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > ServerLimits.maxBodyBytes {
            throw APIError.tooLarge
        }
        let buffer = try await request.collectBody(upTo: ServerLimits.maxBodyBytes)
        return try decodeRequestJSON(T.self, Data(buffer.readableBytesView))
    }
}
