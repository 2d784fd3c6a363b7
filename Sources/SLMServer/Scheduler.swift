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
/// - `inbox`, `cancelled`, `stopping`, `draining` and `sessionCount` are only touched with
///   `condition` locked;
/// - everything else is immutable after `init`.
///
/// Batched decoding: a round samples one token for every live session, then the decoder
/// reads all of them in one batched step (`Generator.readPending`: each weight matrix read
/// once for every stream, attention per stream on its own cache), together with chunks of
/// the prompts being read meanwhile (see `round`).
///
/// Back-pressure: a job whose consumer has not read `backlogPerChoice` events per choice
/// is skipped until it does, so a client that stops reading pauses its own generation
/// instead of letting the worker buffer tokens for it without bound.
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

    /// A job's events in order; reading one frees a place in the job's backlog.
    public struct Events: AsyncSequence, Sendable {
        public typealias Element = ChoiceEvent
        public typealias Failure = Never
        let stream: AsyncStream<ChoiceEvent>
        let backlog: Backlog
        let scheduler: GenerationScheduler

        public struct AsyncIterator: AsyncIteratorProtocol {
            var base: AsyncStream<ChoiceEvent>.Iterator
            let backlog: Backlog
            let scheduler: GenerationScheduler

            public mutating func next() async -> ChoiceEvent? {
                let event = await base.next()
                if event != nil { scheduler.consumed(backlog) }
                return event
            }
        }

        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(base: stream.makeAsyncIterator(), backlog: backlog, scheduler: scheduler)
        }
    }

    /// Events a job has yielded that its consumer has not read yet; guarded by the
    /// scheduler's `condition`.
    final class Backlog: @unchecked Sendable {
        let limit: Int
        var count = 0
        init(limit: Int) { self.limit = limit }
        var isFull: Bool { count >= limit }
    }

    /// See `prefillChunk` (docs/BENCHMARKS.md has the measurement behind it).
    public static let defaultPrefillChunk = 256

    /// How many unread events per choice a job may have before its sessions pause.
    public static let backlogPerChoice = 64

    /// What a submission returns: the events of all its choices, and a way to stop them.
    public struct Submission: Sendable {
        public let events: Events
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
    /// The most prompt tokens a session reads per round (nil: its whole prompt at once): a
    /// long prompt is read in chunks between the other sessions' tokens instead of
    /// stalling them for its whole length (see `round` and `readPrompts` for the chunks' size).
    public let prefillChunk: Int?

    private let bundle: ModelBundle
    private let generator: Generator
    private let condition = NSCondition()
    private var inbox: [Job] = []
    private var cancelled: Set<Int> = []
    private var stopping = false
    /// Refusing new submissions while the running and waiting ones go on (a graceful stop).
    private var draining = false
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
        let backlog: Backlog
        var sessions: [GenerationSession?] = []

        init(id: Int, prompt: String, choices: [GenerationOptions], keepLast: Int?,
             continuation: AsyncStream<ChoiceEvent>.Continuation, admission: AsyncStream<Admission>.Continuation,
             backlog: Backlog) {
            self.id = id
            self.prompt = prompt
            self.choices = choices
            self.keepLast = keepLast
            self.continuation = continuation
            self.admission = admission
            self.backlog = backlog
        }

        var isDone: Bool { !sessions.isEmpty && sessions.allSatisfy { $0 == nil } }
    }

    /// Whether a round's tokens are read in one batched decoder step (else stream by stream).
    let batching: Bool

    /// Takes the bundle over: from here on only the worker thread touches it.
    /// `precision` chooses the decoder's weights (int8: weight-only quantisation), `kvCache`
    /// how its KV caches store keys and values.
    public init(bundle: ModelBundle, name: String? = nil, precision: WeightPrecision = .fp32, kvCache: KVCacheFormat = .fp32,
                maxSessions: Int = 32, maxQueued: Int = 128, prefillChunk: Int? = GenerationScheduler.defaultPrefillChunk,
                batching: Bool = true) {
        precondition(maxSessions >= 1 && maxQueued >= 0, "scheduler: need maxSessions >= 1 and maxQueued >= 0")
        precondition(prefillChunk.map { $0 >= 1 } ?? true, "scheduler: prefillChunk must be at least 1")
        self.maxSessions = maxSessions
        self.maxQueued = maxQueued
        self.prefillChunk = prefillChunk
        self.batching = batching
        self.bundle = bundle
        modelName = name ?? bundle.name
        contextLength = bundle.model.config.context
        parameterCount = bundle.model.parameterCount
        generator = Generator(model: bundle.model, tokenizer: bundle.tokenizer, precision: precision, kvCache: kvCache)
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
        let backlog = Backlog(limit: Self.backlogPerChoice * choices.count)
        let events = Events(stream: stream, backlog: backlog, scheduler: self)
        condition.lock()
        nextID += 1
        let id = nextID
        condition.unlock()
        continuation.onTermination = { [weak self] _ in self?.cancel(id) }
        condition.lock()
        let accepted = !stopping && !draining
        // A job larger than the whole limit may still run alone (n is capped separately).
        let full = accepted && sessionCount > 0 && sessionCount + choices.count > maxSessions + maxQueued
        if full {
            condition.unlock()
            admission.yield(.busy)
            admission.finish()
            continuation.finish()
            return Submission(events: events, admissions: admissions, id: id, scheduler: self)
        }
        if accepted {
            inbox.append(Job(id: id, prompt: prompt, choices: choices, keepLast: keepLast, continuation: continuation,
                             admission: admission, backlog: backlog))
            sessionCount += choices.count
            condition.signal()
        }
        condition.unlock()
        if !accepted {  // (finishing calls onTermination, which takes the lock)
            for i in choices.indices { continuation.yield(ChoiceEvent(choice: i, event: .failed("the server is shutting down"))) }
            continuation.finish()
            admission.finish()
        }
        return Submission(events: events, admissions: admissions, id: id, scheduler: self)
    }

    /// Refuses new submissions from now on (as after `shutdown`) while the generations
    /// already submitted, running or waiting, go on to their end: the first half of a
    /// graceful stop.
    public func drain() {
        condition.lock()
        draining = true
        condition.unlock()
    }

    /// A graceful stop: drains, waits until the submitted generations have ended or
    /// `grace` has passed (or the task is cancelled), then shuts down, which cuts those
    /// still running.
    public func stop(grace: Duration) async {
        drain()
        let deadline = ContinuousClock.now + grace
        while activeSessions > 0 && ContinuousClock.now < deadline {
            do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
        }
        // shutdown() blocks until the worker thread has ended its round: off the pool.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                self.shutdown()
                done.resume()
            }
        }
    }

    /// Whether `drain` or `shutdown` was called.
    public var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return draining || stopping
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

    /// Events of `submission` yielded and not yet read (for tests and diagnostics).
    func unreadEvents(of submission: Submission) -> Int {
        condition.lock()
        defer { condition.unlock() }
        return submission.events.backlog.count
    }

    /// The consumer read one event; a job that was paused on a full backlog may go on.
    fileprivate func consumed(_ backlog: Backlog) {
        condition.lock()
        backlog.count -= 1
        if backlog.count == backlog.limit - 1 { condition.signal() }
        condition.unlock()
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
            while inbox.isEmpty && cancelled.isEmpty && !stopping && !canStartWaiting
                    && running.allSatisfy({ $0.backlog.isFull }) {
                condition.wait()
            }
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
            while canStartWaiting {
                let next = waiting.removeFirst()
                begin(next)
                running.append(next)
            }
            round()
        }
    }

    /// Whether the first waiting job fits in the free generation slots (a job larger than
    /// the limit still runs when nothing else does).
    private var canStartWaiting: Bool {
        guard let next = waiting.first else { return false }
        let live = running.reduce(0) { $0 + $1.sessions.count { $0 != nil } }
        return live == 0 || live + next.choices.count <= maxSessions
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

    /// One token for every live session of every job whose consumer keeps up, in arrival
    /// order; then, for sessions still reading their prompt, one chunk each.
    private func round() {
        var decoding = Duration.zero
        var reading: [GenerationSession] = [], stepped: [GenerationSession] = []
        let clock = ContinuousClock()
        for job in running {
            condition.lock()
            let paused = job.backlog.isFull
            condition.unlock()
            if paused { continue }
            for i in job.sessions.indices {
                guard let session = job.sessions[i] else { continue }
                if prefillChunk != nil, !session.isReady {
                    reading.append(session)
                    continue
                }
                let started = clock.now
                defer { decoding += clock.now - started }
                switch session.next(deferringRead: batching) {
                case .token(let t):
                    stepped.append(session)
                    let bytes = t.id >= 0 ? bundle.tokenizer.tokenBytes(t.id) ?? [] : []
                    let token = StreamedToken(text: t.text, id: t.id, bytes: bytes, logprob: t.logprob, top: t.top)
                    send(ChoiceEvent(choice: i, event: .token(token)), to: job)
                case .finished(let result):
                    send(ChoiceEvent(choice: i, event: .finished(result)), to: job)
                    job.sessions[i] = nil
                    release(1)
                }
            }
            if job.isDone { job.continuation.finish() }
        }
        running.removeAll { $0.isDone }
        guard !stepped.isEmpty else {
            // Nothing decodes: prompts are read at full chunks. (Timing an empty round here
            // once gave them a budget of a few nanoseconds: one token per round, each read
            // alone, so a lone 39-token prompt took 20 ms to its first token.)
            readPrompts(reading, besides: .zero)
            return
        }
        if batching, let maxChunk = prefillChunk, !reading.isEmpty {
            // Prompts join the decoding streams' batched step, a token per row, up to as many
            // rows as there are streams (at least `promptRowsBesideDecoding`): the step then
            // costs about twice a decoding round at most, and each weight is read once for
            // prompts and streams alike. Sessions left without rows wait for the next round.
            var rows = max(Self.promptRowsBesideDecoding, stepped.count)
            var joining: [GenerationSession] = []
            for session in reading where rows > 0 {
                let taken = session.deferPrompt(upTo: min(rows, maxChunk))
                rows -= taken
                if taken > 0 { joining.append(session) }
            }
            generator.readPending(stepped + joining)
            return
        }
        let started = clock.now
        generator.readPending(stepped)
        decoding += clock.now - started
        readPrompts(reading, besides: decoding)
    }

    /// Prompt tokens read beside decoding streams in one batched step, at least. One stream
    /// decoding beside a 1,016-token prompt (llama-5m, `scripts/prefill_gap.py`): with 4,
    /// its median gap between tokens goes from 0.69 to 1.34 ms and the prompt takes 368 ms;
    /// with 8, 2.06 ms and 288 ms; read alone in chunks sized by time, 1.33 ms and 988 ms.
    public static let promptRowsBesideDecoding = 4

    /// Seconds one prompt token takes to read in a chunk, smoothed over recent chunks.
    private var secondsPerPromptToken: Double?

    /// Reads a chunk of each prompt, each on its own (without batching, or with nothing
    /// decoding). While other sessions decode unbatched, the chunks together take
    /// about 90% as long as their tokens did this round, so a running stream's gap between
    /// tokens stays under twice its idle gap while a long prompt is read: a prompt token
    /// then costs about what a decoded token costs (short chunks are stepped), so the
    /// chunks are a token or two, and the prompt is read that much slower. With nothing
    /// decoding, each reads `prefillChunk` tokens, in batches.
    private func readPrompts(_ sessions: [GenerationSession], besides decoding: Duration) {
        guard let maxChunk = prefillChunk, !sessions.isEmpty else { return }
        let budget = decoding.inSeconds * 0.9 / Double(sessions.count)
        let clock = ContinuousClock()
        for session in sessions {
            guard budget > 0 else {
                session.readPrompt(upTo: maxChunk)
                continue
            }
            // (Timed only here: the per-token cost of short chunks, not of batched reads.)
            let tokens = secondsPerPromptToken.map { min(maxChunk, max(1, Int(budget / $0))) } ?? 1
            let started = clock.now
            session.readPrompt(upTo: tokens)
            let perToken = (clock.now - started).inSeconds / Double(tokens)
            secondsPerPromptToken = secondsPerPromptToken.map { 0.7 * $0 + 0.3 * perToken } ?? perToken
        }
    }

    private func send(_ event: ChoiceEvent, to job: Job) {
        switch job.continuation.yield(event) {
        case .enqueued:
            condition.lock()
            job.backlog.count += 1
            condition.unlock()
        case .terminated: cancel(job.id)
        default: break
        }
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
