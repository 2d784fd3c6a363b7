import Foundation
import SLMGenerate
import SLMModels
import SLMText
import Testing
@testable import SLMServer

@Suite(.timeLimit(.minutes(2))) struct SchedulerTests {
    /// More tokens than the tiny test model can produce while a test looks at a running
    /// generation (the fast decoder makes 4,000 of them in milliseconds); such tests
    /// cancel or shut it down instead of waiting for it.
    static let endless = 100_000_000

    func greedy(_ maxTokens: Int, seed: UInt64 = 0) -> GenerationOptions {
        GenerationOptions(maxTokens: maxTokens, sampling: SamplingParameters(temperature: 0, seed: seed))
    }

    @Test func generatesAndFinishes() async throws {
        try await withScheduler { scheduler in
            let submission = scheduler.submit(prompt: "the cat", choices: [greedy(7)])
            var text = "", result: GenerationResult?
            for await e in submission.events {
                #expect(e.choice == 0)
                switch e.event {
                case .token(let t): text += t.text
                case .finished(let r): result = r
                case .failed(let m): Issue.record("failed: \(m)")
                }
            }
            let r = try #require(result)
            #expect(r.completionTokens == 7 && r.finishReason == .length && r.promptTokens == 7)
            #expect(text == r.text)
            try await eventually { scheduler.activeSessions == 0 }
        }
    }

    /// One generation slot and one queue place: a second job waits (nothing generated
    /// for it while the first runs), a third is refused at once, and the second runs as
    /// soon as the first ends.
    @Test func boundedSessionsAndQueue() async throws {
        try await withScheduler(maxSessions: 1, maxQueued: 1) { scheduler in
            let first = scheduler.submit(prompt: "a", choices: [greedy(Self.endless)])
            #expect(await first.admission() == .admitted(promptTokens: 1))
            var firstEvents = first.events.makeAsyncIterator()
            _ = await firstEvents.next()   // it is generating
            let second = scheduler.submit(prompt: "b", choices: [greedy(3)])
            let third = scheduler.submit(prompt: "c", choices: [greedy(3)])
            #expect(await third.admission() == .busy)
            #expect(scheduler.activeSessions == 2)
            // The second is still queued while the first generates.
            for _ in 0..<50 { _ = await firstEvents.next() }
            let queued = Task { await second.admission() }
            try await Task.sleep(for: .milliseconds(50))
            first.cancel()
            #expect(await queued.value == .admitted(promptTokens: 1))
            var finished = false
            for await e in second.events { if case .finished(let r) = e.event { finished = r.completionTokens == 3 } }
            #expect(finished)
            try await eventually { scheduler.activeSessions == 0 }
            // Room again.
            #expect(await scheduler.submit(prompt: "d", choices: [greedy(2)]).admission() == .admitted(promptTokens: 1))
        }
    }

    /// A queued job starts when the running one simply finishes (no cancel, no new
    /// request to wake the worker).
    @Test func queuedJobStartsWhenTheRunningOneFinishes() async throws {
        try await withScheduler(maxSessions: 1, maxQueued: 4) { scheduler in
            let first = scheduler.submit(prompt: "a", choices: [greedy(5)])
            let second = scheduler.submit(prompt: "b", choices: [greedy(5)])
            for await _ in first.events {}
            var finished = false
            for await e in second.events { if case .finished = e.event { finished = true } }
            #expect(finished)
            try await eventually { scheduler.activeSessions == 0 }
        }
    }

    /// Same prompt and options on the scheduler and on a bare generator: same text.
    @Test func matchesTheGenerator() async throws {
        let dir = try makeModelFolder()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let bundle = try ModelBundle(directory: dir)
        let options = GenerationOptions(maxTokens: 20, sampling: SamplingParameters(temperature: 0.9, seed: 11))
        let expected = Generator(model: bundle.model, tokenizer: bundle.tokenizer)
            .generate(prompt: bundle.encodePrompt("a").ids, options: options).text
        let scheduler = GenerationScheduler(bundle: try ModelBundle(directory: dir))
        defer { scheduler.shutdown() }
        var text = ""
        for await e in scheduler.submit(prompt: "a", choices: [options]).events {
            if case .finished(let r) = e.event { text = r.text }
        }
        #expect(text == expected)
    }

    /// A prompt read in chunks of 3 by the scheduler gives the bare generator's text.
    @Test func chunkedPromptsMatchTheGenerator() async throws {
        let dir = try makeModelFolder()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let bundle = try ModelBundle(directory: dir)
        let prompt = "the soul is immortal, the bo"  // 28 of the 32 positions
        let options = GenerationOptions(maxTokens: 50, sampling: SamplingParameters(temperature: 0.9, seed: 2))
        let expected = Generator(model: bundle.model, tokenizer: bundle.tokenizer)
            .generate(prompt: bundle.encodePrompt(prompt).ids, options: options).text
        let scheduler = GenerationScheduler(bundle: try ModelBundle(directory: dir), prefillChunk: 3)
        defer { scheduler.shutdown() }
        var text = ""
        for await e in scheduler.submit(prompt: prompt, choices: [options]).events {
            if case .finished(let r) = e.event { text = r.text }
        }
        #expect(!text.isEmpty && text == expected)
    }

    /// A prompt that arrives while another request decodes is read in that request's
    /// batched steps (a few tokens a round beside its token) and gives the bare
    /// generator's text, as does the request already running.
    @Test func aPromptReadBesideADecodingStreamMatchesTheGenerator() async throws {
        // Weights 20× the initial ones: peaked logits, so that the sums' order (batched or
        // alone) cannot tip a greedy choice.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slm-server-tests-\(UUID().uuidString)")
            .appendingPathComponent("peaked")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let model = try makeModel(ModelConfig(architecture: .gpt2, vocabSize: 28, layers: 1, heads: 2, width: 16, context: 32), seed: 1)
        for (_, t) in model.parameters where t.rank == 2 { for i in 0..<t.count { t.data[i] *= 20 } }
        try ModelStore.save(model, to: dir)
        try CharTokenizer(charset: .micro).save(to: dir)
        let bundle = try ModelBundle(directory: dir)
        let prompt = "the soul is immortal, the bo"  // 28 positions: 7 rounds of 4 beside the stream
        let first = GenerationOptions(maxTokens: 200, sampling: SamplingParameters(temperature: 0))
        let second = GenerationOptions(maxTokens: 30, sampling: SamplingParameters(temperature: 0.9, seed: 2))
        let generator = Generator(model: bundle.model, tokenizer: bundle.tokenizer)
        let expectedFirst = generator.generate(prompt: bundle.encodePrompt("a").ids, options: first).text
        let expectedSecond = generator.generate(prompt: bundle.encodePrompt(prompt).ids, options: second).text
        let scheduler = GenerationScheduler(bundle: try ModelBundle(directory: dir))
        defer { scheduler.shutdown() }
        let running = scheduler.submit(prompt: "a", choices: [first])
        var iterator = running.events.makeAsyncIterator()
        _ = await iterator.next()  // decoding from here on
        var secondText = ""
        for await e in scheduler.submit(prompt: prompt, choices: [second]).events {
            if case .finished(let r) = e.event { secondText = r.text }
        }
        var firstText = ""
        while let e = await iterator.next() {
            if case .finished(let r) = e.event {
                firstText = r.text
                break
            }
        }
        #expect(!secondText.isEmpty && secondText == expectedSecond)
        #expect(firstText == expectedFirst)
    }

    /// A long and a short request: the short one is served between the long one's tokens
    /// and finishes first.
    @Test func roundRobinLetsAShortRequestFinishFirst() async throws {
        try await withScheduler { scheduler in
            let long = scheduler.submit(prompt: "a", choices: [greedy(4000)])
            // Wait until the long one is generating.
            var longIterator = long.events.makeAsyncIterator()
            _ = await longIterator.next()
            let short = scheduler.submit(prompt: "b", choices: [greedy(3)])
            var shortResult: GenerationResult?
            for await e in short.events { if case .finished(let r) = e.event { shortResult = r } }
            #expect(shortResult?.completionTokens == 3)
            // The long one is still far from done.
            var longTokens = 1
            while let e = await longIterator.next() {
                if case .token = e.event { longTokens += 1 }
                if case .finished(let r) = e.event {
                    #expect(r.completionTokens == 4000)
                    break
                }
            }
            #expect(longTokens >= 4000)
        }
    }

    /// A consumer that stops reading pauses its own generation once its backlog is full,
    /// and reading on resumes it to the end.
    @Test func aSlowReaderPausesItsGeneration() async throws {
        try await withScheduler { scheduler in
            let s = scheduler.submit(prompt: "a", choices: [greedy(4000)])
            let limit = GenerationScheduler.backlogPerChoice
            try await eventually { scheduler.unreadEvents(of: s) == limit }
            try await Task.sleep(for: .milliseconds(100))
            #expect(scheduler.unreadEvents(of: s) == limit)
            #expect(scheduler.activeSessions == 1)
            var tokens = 0
            var result: GenerationResult?
            for await e in s.events {
                if case .token(let t) = e.event, !t.isFlush { tokens += 1 }
                if case .finished(let r) = e.event { result = r }
            }
            #expect(result?.completionTokens == 4000 && tokens == 4000)
            #expect(scheduler.unreadEvents(of: s) == 0)
        }
    }

    @Test func choicesInterleaveAndCarryTheirIndex() async throws {
        try await withScheduler { scheduler in
            let s = scheduler.submit(prompt: "x", choices: [greedy(5), greedy(5), greedy(5)])
            var order: [Int] = []
            var finished = Set<Int>()
            for await e in s.events {
                if case .token = e.event { order.append(e.choice) }
                if case .finished = e.event { finished.insert(e.choice) }
            }
            #expect(finished == [0, 1, 2])
            #expect(order.prefix(6) == [0, 1, 2, 0, 1, 2])  // one token each in turn
        }
    }

    @Test func cancellingFreesTheSessions() async throws {
        try await withScheduler { scheduler in
            let s = scheduler.submit(prompt: "x", choices: [greedy(Self.endless), greedy(Self.endless)])
            var iterator = s.events.makeAsyncIterator()
            _ = await iterator.next()
            #expect(scheduler.activeSessions == 2)
            s.cancel()
            try await eventually { scheduler.activeSessions == 0 }
            // The stream ends without a finish.
            while let e = await iterator.next() {
                if case .finished = e.event { Issue.record("a cancelled choice finished") }
            }
        }
    }

    /// A consumer that goes away (its task cancelled) cancels its generations.
    @Test func aCancelledConsumerTaskFreesTheSessions() async throws {
        try await withScheduler { scheduler in
            let s = scheduler.submit(prompt: "x", choices: [greedy(Self.endless)])
            let consumer = Task {
                var n = 0
                for await _ in s.events { n += 1 }
                return n
            }
            try await eventually { scheduler.activeSessions == 1 }
            try await Task.sleep(for: .milliseconds(20))
            consumer.cancel()
            _ = await consumer.value
            try await eventually { scheduler.activeSessions == 0 }
        }
    }

    /// A graceful stop: later submissions fail at once, a job already submitted ends
    /// normally, and one that outlasts the grace period is cut with a failure.
    @Test func gracefulStopLetsRunningJobsFinishWithinTheGrace() async throws {
        try await withScheduler { scheduler in
            let short = scheduler.submit(prompt: "a", choices: [greedy(20)])
            let endless = scheduler.submit(prompt: "b", choices: [greedy(Self.endless)])
            var iterator = endless.events.makeAsyncIterator()
            _ = await iterator.next()
            let stopping = Task { await scheduler.stop(grace: .milliseconds(300)) }
            try await eventually { scheduler.isStopping }
            var laterFailed = false
            for await e in scheduler.submit(prompt: "c", choices: [greedy(3)]).events {
                if case .failed = e.event { laterFailed = true }
            }
            #expect(laterFailed)
            var finished = false
            for await e in short.events { if case .finished = e.event { finished = true } }
            #expect(finished)
            var cut = false
            while let e = await iterator.next() { if case .failed = e.event { cut = true } }
            #expect(cut)
            await stopping.value
            #expect(scheduler.activeSessions == 0)
        }
    }

    @Test func shutdownEndsRunningAndLaterRequests() async throws {
        let dir = try makeModelFolder()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let scheduler = GenerationScheduler(bundle: try ModelBundle(directory: dir))
        let running = scheduler.submit(prompt: "x", choices: [greedy(Self.endless)])
        var iterator = running.events.makeAsyncIterator()
        _ = await iterator.next()
        scheduler.shutdown()
        var failed = false
        while let e = await iterator.next() { if case .failed = e.event { failed = true } }
        #expect(failed)
        #expect(scheduler.activeSessions == 0)
        var laterFailed = false
        for await e in scheduler.submit(prompt: "y", choices: [greedy(3)]).events { if case .failed = e.event { laterFailed = true } }
        #expect(laterFailed)
    }
}
