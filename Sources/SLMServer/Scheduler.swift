import Foundation
import SLMGenerate
import SLMModels
import SLMTensor
import SLMText

/// Runs every generation of a server on one dedicated thread, one token per session in
/// turn, so that a long request does not hold a short one back beyond its share.
///
/// Why a thread of its own: a forward pass already uses every core (`Parallel`), and the
/// model, its tensors and KV caches are not `Sendable`. They are created, used and freed
/// on the worker thread only; neither NIO's event loops nor the cooperative pool of Swift
/// concurrency ever run a forward pass.
///
/// `@unchecked Sendable` because of that split, which the compiler cannot see:
/// - `bundle`, `generator` and `running` belong to the worker thread alone;
/// - `inbox`, `cancelled`, `stopping` and `sessionCount` are only touched with
///   `condition` locked;
/// - everything else is immutable after `init`.
///
/// No batching: each step is one token of one session (a batched decode step would
/// need a batched KV cache in the models).
public final class GenerationScheduler: @unchecked Sendable {
    /// What a request hears about one of its choices.
    public enum Event: Sendable {
        case token(StreamedToken)
        case finished(GenerationResult)
        /// The server is shutting down; the choice ended early.
        case failed(String)
    }

    /// A generated token with the bytes of the token itself (for logprobs).
    public struct StreamedToken: Sendable {
        /// The text released with this token ("" while held back). A final flush of held
        /// text comes as a token with `id` -1 and no log-probability.
        public var text: String
        public var id: Int32
        /// The token's own bytes and text (may be part of a UTF-8 character).
        public var bytes: [UInt8]
        public var logprob: Double
        public var top: [(token: String, logprob: Double)]

        public var token: String { String(decoding: bytes, as: UTF8.self) }
        public var isFlush: Bool { id < 0 }
    }

    /// One choice's event, tagged with the choice's index.
    public struct ChoiceEvent: Sendable {
        public var choice: Int
        public var event: Event
    }

    /// Whether the worker took a prompt on: the tokens the model reads, or the prompt's
    /// length when it exceeds the context (and no truncation was asked for).
    public enum Admission: Sendable, Equatable {
        case admitted(promptTokens: Int)
        case tooLong(promptTokens: Int)
        /// Every generation slot and every queue place is taken.
        case busy
    }

    /// What a submission returns: the events of all its choices, and a way to stop them.
    public struct Submission: Sendable {
        public let events: AsyncStream<ChoiceEvent>
        let admissions: AsyncStream<Admission>
        let id: Int
        let scheduler: GenerationScheduler

        /// How the worker took the prompt (once it has tokenized it); nil when the job
        /// ended first (cancelled, or the server is shutting down).
        public func admission() async -> Admission? {
            for await a in admissions { return a }
            return nil
        }

        /// Stops the generations (if still running) and frees their caches. Idempotent.
        public func cancel() { scheduler.cancel(id) }
    }

    public let modelName: String
    /// The model's context in tokens (the generator slides its window beyond it).
    public let contextLength: Int
    public let parameterCount: Int
    /// Generations that run at once; jobs beyond wait in a queue of `maxQueued` sessions,
    /// and submissions beyond that are refused (`Admission.busy`).
    public let maxSessions: Int
    public let maxQueued: Int

    private let bundle: ModelBundle
    private let generator: Generator
    private let condition = NSCondition()
    private var inbox: [Job] = []
    private var cancelled: Set<Int> = []
    private var stopping = false
    private var sessionCount = 0
    private var nextID = 0
    private var running: [Job] = []
    /// Jobs that arrived while every generation slot was taken, in arrival order.
    private var waiting: [Job] = []
    private let finishedWorker = DispatchSemaphore(value: 0)

    private final class Job {
        let id: Int
        let prompt: String
        let choices: [GenerationOptions]
        /// Keep only the prompt's last tokens (at most the context); nil: refuse a prompt
        /// longer than the context.
        let keepLast: Int?
        let continuation: AsyncStream<ChoiceEvent>.Continuation
        let admission: AsyncStream<Admission>.Continuation
        var sessions: [GenerationSession?] = []

        init(id: Int, prompt: String, choices: [GenerationOptions], keepLast: Int?,
             continuation: AsyncStream<ChoiceEvent>.Continuation, admission: AsyncStream<Admission>.Continuation) {
            self.id = id
            self.prompt = prompt
            self.choices = choices
            self.keepLast = keepLast
            self.continuation = continuation
            self.admission = admission
        }

        var isDone: Bool { !sessions.isEmpty && sessions.allSatisfy { $0 == nil } }
    }

    /// Takes the bundle over: from here on only the worker thread touches it.
    /// `precision` chooses the decoder's weights (int8: weight-only quantisation).
    public init(bundle: ModelBundle, name: String? = nil, precision: WeightPrecision = .fp32,
                maxSessions: Int = 32, maxQueued: Int = 128) {
        precondition(maxSessions >= 1 && maxQueued >= 0, "scheduler: need maxSessions >= 1 and maxQueued >= 0")
        self.maxSessions = maxSessions
        self.maxQueued = maxQueued
        self.bundle = bundle
        modelName = name ?? bundle.name
        contextLength = bundle.model.config.context
        parameterCount = bundle.model.parameterCount
        generator = Generator(model: bundle.model, tokenizer: bundle.tokenizer, precision: precision)
        Thread { [self] in
            Thread.current.name = "slm-generation"  // (set from the thread itself, Linux shows it)
            // The GEMM layer applies the thread count on every calling thread itself.
            work()
        }.start()
    }

    /// Sessions held by the worker: queued or generating.
    public var activeSessions: Int {
        condition.lock()
        defer { condition.unlock() }
        return sessionCount
    }

    /// Starts one generation per entry of `choices` on `prompt`. When the consumer of the
    /// returned stream goes away (or calls `cancel()`), the generations stop. A prompt
    /// longer than the context is refused (`Admission.tooLong`, no events) unless
    /// `keepLast` asks to keep only its last tokens.
    public func submit(prompt: String, choices: [GenerationOptions], keepLast: Int? = nil) -> Submission {
        precondition(!choices.isEmpty, "at least one choice")
        let (stream, continuation) = AsyncStream.makeStream(of: ChoiceEvent.self)
        let (admissions, admission) = AsyncStream.makeStream(of: Admission.self)
        condition.lock()
        nextID += 1
        let id = nextID
        condition.unlock()
        continuation.onTermination = { [weak self] _ in self?.cancel(id) }
        condition.lock()
        let accepted = !stopping
        // A job larger than the whole limit may still run alone (n is capped separately).
        let full = accepted && sessionCount > 0 && sessionCount + choices.count > maxSessions + maxQueued
        if full {
            condition.unlock()
            admission.yield(.busy)
            admission.finish()
            continuation.finish()
            return Submission(events: stream, admissions: admissions, id: id, scheduler: self)
        }
        if accepted {
            inbox.append(Job(id: id, prompt: prompt, choices: choices, keepLast: keepLast, continuation: continuation,
                             admission: admission))
            sessionCount += choices.count
            condition.signal()
        }
        condition.unlock()
        if !accepted {  // (finishing calls onTermination, which takes the lock)
            for i in choices.indices { continuation.yield(ChoiceEvent(choice: i, event: .failed("the server is shutting down"))) }
            continuation.finish()
            admission.finish()
        }
        return Submission(events: stream, admissions: admissions, id: id, scheduler: self)
    }

    /// Ends every generation ("the server is shutting down") and lets the worker exit;
    /// later submissions fail at once. Returns when the worker has stopped.
    public func shutdown() {
        condition.lock()
        let first = !stopping
        stopping = true
        condition.signal()
        condition.unlock()
        if first { finishedWorker.wait() }
    }

    private func cancel(_ id: Int) {
        condition.lock()
        cancelled.insert(id)
        condition.signal()
        condition.unlock()
    }

    // MARK: The worker thread

    private func work() {
        while true {
            condition.lock()
            // (`waiting` belongs to this thread: jobs left there when the running ones end
            // start in this round, without waiting for another request.)
            while inbox.isEmpty && running.isEmpty && waiting.isEmpty && cancelled.isEmpty && !stopping { condition.wait() }
            let arrived = inbox
            inbox.removeAll()
            let dropped = cancelled
            cancelled.removeAll()
            let stop = stopping
            condition.unlock()

            waiting += arrived
            if !dropped.isEmpty {
                for job in running + waiting where dropped.contains(job.id) { end(job) }
                running.removeAll { dropped.contains($0.id) }
                waiting.removeAll { dropped.contains($0.id) }
            }
            if stop {
                for job in running + waiting {
                    let live = job.sessions.isEmpty ? Array(job.choices.indices) : job.sessions.indices.filter { job.sessions[$0] != nil }
                    for i in live { job.continuation.yield(ChoiceEvent(choice: i, event: .failed("the server is shutting down"))) }
                    end(job)
                }
                running.removeAll()
                waiting.removeAll()
                finishedWorker.signal()
                return
            }
            // Start waiting jobs while generation slots are free (one at least, so that a
            // job larger than the limit still runs when nothing else does).
            var live = running.reduce(0) { $0 + $1.sessions.count { $0 != nil } }
            while let next = waiting.first, live == 0 || live + next.choices.count <= maxSessions {
                waiting.removeFirst()
                begin(next)
                running.append(next)
                live += next.sessions.count { $0 != nil }
            }
            round()
        }
    }

    private func begin(_ job: Job) {
        var ids = bundle.encodePrompt(job.prompt).ids
        if let keep = job.keepLast { ids = Array(ids.suffix(min(keep, contextLength))) }
        guard ids.count <= contextLength else {
            job.admission.yield(.tooLong(promptTokens: ids.count))
            end(job)  // (which also finishes the admission stream)
            return
        }
        job.admission.yield(.admitted(promptTokens: ids.count))
        job.sessions = job.choices.map { generator.start(prompt: ids, options: $0) }
    }

    /// One token for every live session of every job, in arrival order.
    private func round() {
        for job in running {
            for i in job.sessions.indices {
                guard let session = job.sessions[i] else { continue }
                switch session.next() {
                case .token(let t):
                    let bytes = t.id >= 0 ? bundle.tokenizer.tokenBytes(t.id) ?? [] : []
                    let token = StreamedToken(text: t.text, id: t.id, bytes: bytes, logprob: t.logprob, top: t.top)
                    if case .terminated = job.continuation.yield(ChoiceEvent(choice: i, event: .token(token))) {
                        cancel(job.id)
                    }
                case .finished(let result):
                    job.continuation.yield(ChoiceEvent(choice: i, event: .finished(result)))
                    job.sessions[i] = nil
                    release(1)
                }
            }
            if job.isDone { job.continuation.finish() }
        }
        running.removeAll { $0.isDone }
    }

    /// Drops a job's sessions (their KV caches go with them) and closes its stream.
    private func end(_ job: Job) {
        let live = job.sessions.isEmpty ? job.choices.count : job.sessions.count { $0 != nil }
        for case let session? in job.sessions { session.cancel() }
        job.sessions = job.choices.map { _ in nil }
        job.continuation.finish()
        job.admission.finish()
        release(live)
    }

    private func release(_ n: Int) {
        guard n > 0 else { return }
        condition.lock()
        sessionCount -= n
        condition.unlock()
    }
}
