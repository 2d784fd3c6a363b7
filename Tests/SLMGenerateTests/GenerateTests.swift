import Foundation
import SLMModels
import SLMTensor
import SLMText
import Testing
@testable import SLMGenerate

@Suite struct KVCacheTests {
    /// Logits from the cache, token by token, equal a full recomputation of the context.
    @Test(arguments: [ModelConfig.Architecture.gpt2, .llama])
    func cachedDecodingMatchesRecomputation(_ architecture: ModelConfig.Architecture) throws {
        let config = ModelConfig(architecture: architecture, vocabSize: 17, layers: 2, heads: 4, kvHeads: architecture == .llama ? 2 : 4,
                                 width: 32, context: 12)
        let model = try makeModel(config, seed: 3)
        let ids: [Int32] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]
        let full = Autograd.noGrad { model.logits(ids, batch: 1, time: ids.count) }.toArray()
        let cache = KVCache(config)
        var cached = Autograd.noGrad { model.logits(Array(ids[0..<5]), state: cache) }.toArray()  // a prompt of 5
        for id in ids[5...] { cached += Autograd.noGrad { model.logits([id], state: cache) }.toArray() }
        #expect(cache.length == 12 && cache.remaining == 0)
        #expect(zip(full, cached).allSatisfy { abs($0 - $1) < 1e-4 }, "max difference \(zip(full, cached).map { abs($0 - $1) }.max()!)")
    }
}

@Suite struct SamplerTests {
    let logits: [Float] = [2, 1, 0.5, 3, -1]  // probabilities ≈ .23, .08, .05, .63, .01

    func pick(_ p: SamplingParameters, draws: Int = 400) -> [Int32: Int] {
        var s = Sampler(p)
        var counts: [Int32: Int] = [:]
        for _ in 0..<draws { counts[logits.withUnsafeBufferPointer { s.sample($0.baseAddress!, count: 5).id }, default: 0] += 1 }
        return counts
    }

    @Test func greedyTakesTheMaximum() {
        #expect(pick(SamplingParameters(temperature: 0)) == [3: 400])
        // A vanishing temperature is greedy too (1/T would overflow a Float).
        #expect(pick(SamplingParameters(temperature: 1e-30, seed: 4)) == [3: 400])
    }

    @Test func topKKeepsOnlyTheKMostLikely() {
        #expect(Set(pick(SamplingParameters(temperature: 1, topK: 2, seed: 1)).keys) == [0, 3])
        #expect(Sampler.largest([1, 5, 3, 5, 2], 3) == [1, 3, 2])
    }

    @Test func topPKeepsTheSmallestSetReachingP() {
        // .63 < .8, .63 + .23 = .86 >= .8: tokens 3 and 0.
        #expect(Set(pick(SamplingParameters(temperature: 1, topP: 0.8, seed: 2)).keys) == [0, 3])
        #expect(Set(pick(SamplingParameters(temperature: 1, topP: 0.5, seed: 2)).keys) == [3])
    }

    /// The nucleus without a full sort equals the obvious definition: sort by weight
    /// (ties by index) and take the shortest prefix that reaches p of the mass.
    @Test func nucleusMatchesSortingEverything() {
        var rng = RNG(seed: 11)
        for trial in 0..<300 {
            let n = 1 + Int(rng.next() % 400)
            // Few distinct values, so ties at the threshold are common; some pools peaked.
            let pool = (0..<n).map { i -> (index: Int, weight: Double) in
                let w = Double(rng.next() % 8 + 1) / 8
                return (i, trial % 3 == 0 ? pow(w, 12) : w)
            }
            let p = [0.1, 0.5, 0.9, 0.95, 0.999][trial % 5]
            let sorted = pool.sorted { $0.weight > $1.weight || ($0.weight == $1.weight && $0.index < $1.index) }
            let target = p * pool.reduce(0) { $0 + $1.weight }
            var expected: Set<Int> = [], mass = 0.0
            for e in sorted where mass < target || expected.isEmpty {
                expected.insert(e.index)
                mass += e.weight
            }
            #expect(Set(Sampler.nucleus(pool, p).map(\.index)) == expected, "trial \(trial), n \(n), p \(p)")
        }
    }

    @Test func minPDropsTheUnlikely() {
        // Keep tokens with p >= 0.2 · 0.63: tokens 3 and 0 only.
        #expect(Set(pick(SamplingParameters(temperature: 1, minP: 0.2, seed: 3)).keys) == [0, 3])
    }

    /// Presence and frequency penalties count generated tokens only (OpenAI, vLLM); the
    /// repetition penalty also counts the prompt (transformers, llama.cpp).
    @Test func penaltiesPushSeenTokensDown() {
        func pick(_ s: inout Sampler) -> Int32 { logits.withUnsafeBufferPointer { s.sample($0.baseAddress!, count: 5).id } }
        var s = Sampler(SamplingParameters(temperature: 0, presencePenalty: 2))
        s.observePrompt([3, 3, 3])
        #expect(pick(&s) == 3)   // the prompt does not count: 3 wins and is now generated
        #expect(pick(&s) == 0)   // 3 falls from 3 to 1: token 0 (2) wins
        var f = Sampler(SamplingParameters(temperature: 0, frequencyPenalty: 0.6))
        #expect(pick(&f) == 3)   // 3 → 2.4 after one generation
        #expect(pick(&f) == 3)   // 2.4 > 2: generated twice now, 3 → 1.8
        #expect(pick(&f) == 0)
        var r = Sampler(SamplingParameters(temperature: 0, repetitionPenalty: 2))
        r.observePrompt([3])      // 3 → 1.5 < 2: the prompt counts for this one
        #expect(pick(&r) == 0)
        #expect(pick(&r) == 3)    // 0 → 1 once generated, 3 stays at 1.5
    }

    @Test func sameSeedSameChoices() {
        let p = SamplingParameters(temperature: 1.2, seed: 42)
        var a = Sampler(p), b = Sampler(p)
        let xs = (0..<50).map { _ in logits.withUnsafeBufferPointer { a.sample($0.baseAddress!, count: 5).id } }
        let ys = (0..<50).map { _ in logits.withUnsafeBufferPointer { b.sample($0.baseAddress!, count: 5).id } }
        #expect(xs == ys && Set(xs).count > 2)
    }

    @Test func frequenciesFollowTheDistribution() {
        let counts = pick(SamplingParameters(temperature: 1, seed: 9), draws: 4000)
        #expect(abs(Double(counts[3] ?? 0) / 4000 - 0.63) < 0.04)
    }

    @Test func logprobsAndAlternatives() {
        var s = Sampler(SamplingParameters(temperature: 0))
        let t = logits.withUnsafeBufferPointer { s.sample($0.baseAddress!, count: 5, topLogprobs: 2) }
        #expect(t.top.map(\.id) == [3, 0])
        let z = logits.map { exp(Double($0)) }.reduce(0, +)
        #expect(abs(t.logprob - (3 - log(z))) < 1e-6)
    }

    @Test func invalidParametersAreNamed() {
        #expect(SamplingParameters(topP: 0).problem != nil)
        #expect(SamplingParameters(temperature: -1).problem != nil)
        #expect(SamplingParameters().problem == nil)
    }
}

@Suite struct TextStreamTests {
    func feed(_ pieces: [[UInt8]], stops: [String] = []) -> (shown: [String], all: String, stopped: Bool) {
        var s = TextStream(stops: stops)
        var shown = pieces.map { s.push($0) }
        shown.append(s.finish())
        return (shown, shown.joined(), s.stopped)
    }

    @Test func neverSplitsACharacter() {
        let bytes = Array("日本😀é".utf8)  // 3 + 3 + 4 + 2 bytes, fed one byte at a time
        let (shown, all, _) = feed(bytes.map { [$0] })
        #expect(all == "日本😀é")
        #expect(shown.allSatisfy { $0.isEmpty || Array($0.utf8).allSatisfy { _ in true } })
        #expect(shown.filter { !$0.isEmpty } == ["日", "本", "😀", "é"])
    }

    @Test func holdsBackPossibleStopsAndDropsTheStop() {
        let (shown, all, stopped) = feed([Array("Hello\nUs".utf8), Array("er: more".utf8)], stops: ["\nUser:"])
        #expect(shown[0] == "Hello", "the possible stop \"\\nUs\" is held back")
        #expect(all == "Hello" && stopped)
    }

    @Test func releasesHeldTextThatNeverBecameAStop() {
        let (shown, all, stopped) = feed([Array("a\nUs".utf8), Array("ually".utf8)], stops: ["\nUser:"])
        #expect(shown[0] == "a" && all == "a\nUsually" && !stopped)
        let (_, end, _) = feed([Array("ends with \nUs".utf8)], stops: ["\nUser:"])
        #expect(end == "ends with \nUs", "held text is flushed at the end")
    }

    @Test func stopsSpanningManyTokensAndMultibyteText() {
        let pieces = ["火", "は", "E", "N", "D", "の"].map { Array($0.utf8) }
        let (_, all, stopped) = feed(pieces, stops: ["END"])
        #expect(all == "火は" && stopped)
    }
}

@Suite struct EvaluationTests {
    @Test func diversityByHand() {
        let d = Evaluation.diversity("a b a b")
        #expect(d.distinct1 == 0.5)            // {a, b} of 4
        #expect(abs(d.distinct2 - 2.0 / 3) < 1e-12)  // {a b, b a} of 3
        #expect(d.characters == 7)
        #expect(d.repetition4 == 0)  // "a b ", " b a", "b a ", " a b": all different
        // abab, baba, abab, baba, abab: three of five 4-grams were seen before.
        #expect(abs(Evaluation.diversity("abababab").repetition4 - 0.6) < 1e-12)
    }

    @Test func chatTemplate() {
        let p = ChatTemplate.render([ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: "Hi")])
        #expect(p == "System: Be brief.\n\nUser: Hi\n\nAssistant:")
    }
}

@Suite struct GeneratorTests {
    func generator() throws -> Generator {
        let config = ModelConfig(architecture: .gpt2, vocabSize: 28, layers: 1, heads: 2, width: 16, context: 12)
        return Generator(model: try makeModel(config, seed: 5), tokenizer: CharTokenizer(charset: .micro))
    }

    @Test func runsPastAFullContextAndStopsAtTheLimit() throws {
        let g = try generator()
        let r = g.generate(prompt: [2, 3, 4], options: GenerationOptions(maxTokens: 40, sampling: SamplingParameters(temperature: 1, seed: 1)))
        #expect(r.finishReason == .length && r.completionTokens == 40 && r.text.count == 40)
    }

    @Test func seededGenerationRepeatsAndCancellationStops() throws {
        let g = try generator()
        let options = GenerationOptions(maxTokens: 20, sampling: SamplingParameters(temperature: 1, seed: 7))
        #expect(g.generate(prompt: [5], options: options).text == g.generate(prompt: [5], options: options).text)
        var seen = 0
        let r = g.generate(prompt: [5], options: options) { _ in
            seen += 1
            return seen < 3
        }
        #expect(r.finishReason == .cancelled && r.completionTokens == 3)
        let session = g.start(prompt: [5], options: options)
        _ = session.next()
        #expect(session.cancel().finishReason == .cancelled)
        if case .finished(let again) = session.next() { #expect(again.finishReason == .cancelled) } else { Issue.record("not finished") }
    }

    /// Sessions stepped together (`next(deferringRead:)` then one `readPending`, as the
    /// server does) produce the texts they produce alone: greedy and seeded sampling, with
    /// prompts of different lengths, through context-full shifts, one session ending early.
    @Test(arguments: [ModelConfig.Architecture.gpt2, .llama])
    func sessionsSteppedTogetherMatchSteppedAlone(_ architecture: ModelConfig.Architecture) throws {
        let config = ModelConfig(architecture: architecture, vocabSize: 28, layers: 2, heads: 2, width: 32, context: 16)
        let model = try makeModel(config, seed: 4)
        for (_, t) in model.parameters where t.rank == 2 { for i in 0..<t.count { t.data[i] *= 20 } }
        let g = Generator(model: model, tokenizer: CharTokenizer(charset: .micro))
        let setups: [([Int32], GenerationOptions)] = [
            ([3, 4, 5], GenerationOptions(maxTokens: 30, sampling: SamplingParameters(temperature: 0))),
            ([7], GenerationOptions(maxTokens: 25, sampling: SamplingParameters(temperature: 0.9, seed: 3))),
            ([1, 2, 3, 4, 5, 6, 7, 8], GenerationOptions(maxTokens: 6, sampling: SamplingParameters(temperature: 1, seed: 8))),
        ]
        let alone = setups.map { g.generate(prompt: $0.0, options: $0.1).text }
        let sessions = setups.map { g.start(prompt: $0.0, options: $0.1) }
        var texts = [String](repeating: "", count: sessions.count)
        var live = Set(sessions.indices)
        while !live.isEmpty {
            for i in live.sorted() {
                switch sessions[i].next(deferringRead: true) {
                case .token(let t): texts[i] += t.text
                case .finished: live.remove(i)
                }
            }
            g.readPending(sessions)
        }
        #expect(texts == alone)
    }

    /// Prompts deferred in chunks (`deferPrompt`) and read in the same batched step as the
    /// other sessions' decoded tokens, as the server reads prompts while streams decode,
    /// give the texts a session produces alone: through context-full shifts (whose kept
    /// half is re-read the same way), for attention and mixer models, fp32 and int8.
    @Test(arguments: [(ModelConfig.Architecture.gpt2, WeightPrecision.fp32), (.llama, .fp32), (.llama, .int8), (.monarch, .fp32)])
    func promptsReadBesideDecodingMatchAlone(_ setup: (architecture: ModelConfig.Architecture, precision: WeightPrecision)) throws {
        let config = ModelConfig(architecture: setup.architecture, vocabSize: 28, layers: 2, heads: 2, width: 16, context: 16, ffnWidth: 24)
        let model = try makeModel(config, seed: 5)
        for (_, t) in model.parameters where t.rank == 2 { for i in 0..<t.count { t.data[i] *= 20 } }
        let g = Generator(model: model, tokenizer: CharTokenizer(charset: .micro), precision: setup.precision)
        let setups: [([Int32], GenerationOptions, Int)] = [
            ([3, 4], GenerationOptions(maxTokens: 30, sampling: SamplingParameters(temperature: 0)), 1),
            ([7, 8, 9, 10, 11, 12, 13, 3, 4, 5, 6], GenerationOptions(maxTokens: 20, sampling: SamplingParameters(temperature: 0.9, seed: 3)), 3),
            ([1, 2, 3, 4, 5, 6, 7, 8, 9], GenerationOptions(maxTokens: 12, sampling: SamplingParameters(temperature: 0)), 4),
        ]
        let alone = setups.map { g.generate(prompt: $0.0, options: $0.1).text }
        let sessions = setups.map { g.start(prompt: $0.0, options: $0.1) }
        var texts = [String](repeating: "", count: sessions.count)
        var live = Set(sessions.indices), deferred = 0
        sessions[0].readPrompt(upTo: 2)  // one session decodes from the first round
        while !live.isEmpty {
            for i in live.sorted() {
                if !sessions[i].isReady {
                    deferred += sessions[i].deferPrompt(upTo: setups[i].2)
                    continue
                }
                switch sessions[i].next(deferringRead: true) {
                case .token(let t): texts[i] += t.text
                case .finished: live.remove(i)
                }
            }
            g.readPending(sessions)
        }
        #expect(texts == alone)
        #expect(deferred > 20, "prompts and shifted windows went through the batched step")
    }

    /// The fast decoder and the general forward pass choose the same tokens, through
    /// several context-full shifts (greedy, and seeded sampling with penalties), for
    /// both architectures; int8 runs to the end too.
    @Test(arguments: [ModelConfig.Architecture.gpt2, .llama])
    func fastDecoderMatchesTheForwardPass(_ architecture: ModelConfig.Architecture) throws {
        let config = ModelConfig(architecture: architecture, vocabSize: 28, layers: 2, heads: 4, kvHeads: architecture == .llama ? 2 : 4,
                                 width: 32, context: 10)
        let model = try makeModel(config, seed: 9)
        // Larger weights than the initial ones, so the logits are far from uniform.
        for (_, t) in model.parameters where t.rank == 2 { for i in 0..<t.count { t.data[i] *= 20 } }
        let tokenizer = CharTokenizer(charset: .micro)
        let fast = Generator(model: model, tokenizer: tokenizer), slow = Generator(model: model, tokenizer: tokenizer, fastDecoding: false)
        for sampling in [SamplingParameters(temperature: 0), SamplingParameters(temperature: 0.9, topP: 0.9, presencePenalty: 0.5, seed: 3)] {
            let options = GenerationOptions(maxTokens: 35, sampling: sampling)
            var a: [Int32] = [], b: [Int32] = []
            let ra = fast.generate(prompt: [3, 4, 5], options: options) { a.append($0.id); return true }
            let rb = slow.generate(prompt: [3, 4, 5], options: options) { b.append($0.id); return true }
            #expect(a == b)
            #expect(ra.text == rb.text && ra.completionTokens == 35)
        }
        let int8 = Generator(model: model, tokenizer: tokenizer, precision: .int8)
        #expect(int8.generate(prompt: [3, 4, 5], options: GenerationOptions(maxTokens: 25)).completionTokens == 25)
    }

    /// A prompt read in chunks (as the server reads long prompts between other streams'
    /// tokens), and the window re-read in chunks after each context shift, gives the
    /// tokens of a whole read: for every architecture, on the fast decoder (fp32 batched
    /// continuations, int8 steps) and on the general forward pass.
    @Test(arguments: [ModelConfig.Architecture.gpt2, .llama, .monarch])
    func chunkedPromptReadsMatchAWholeRead(_ architecture: ModelConfig.Architecture) throws {
        let config = ModelConfig(architecture: architecture, vocabSize: 28, layers: 2, heads: 2, width: 16, context: 36, ffnWidth: 24)
        let model = try makeModel(config, seed: 13)
        for (_, t) in model.parameters where t.rank == 2 { for i in 0..<t.count { t.data[i] *= 20 } }
        let tokenizer = CharTokenizer(charset: .micro)
        // 26 tokens: chunks of one token step, longer ones take the batched decode step.
        let prompt: [Int32] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 3, 4, 20, 21, 22, 23, 24, 25, 2, 3, 4, 5, 6, 7, 8]
        let options = GenerationOptions(maxTokens: 60, sampling: SamplingParameters(temperature: 0.8, seed: 4))
        for generator in [Generator(model: model, tokenizer: tokenizer), Generator(model: model, tokenizer: tokenizer, fastDecoding: false),
                          Generator(model: model, tokenizer: tokenizer, precision: .int8)] {
            let whole = generator.generate(prompt: prompt, options: options)
            for chunk in [1, 3, 8, 9, 64] {
                let session = generator.start(prompt: prompt, options: options)
                var reads = 0, text = "", shifts = 0
                loop: while true {
                    if !session.isReady {
                        reads += 1
                        if session.readPrompt(upTo: chunk) { shifts += 1 }
                        continue
                    }
                    switch session.next() {
                    case .token(let t): text += t.text
                    case .finished(let r):
                        #expect(r.text == whole.text && r.completionTokens == 60, "chunk \(chunk)")
                        break loop
                    }
                }
                #expect(text == whole.text)
                // The prompt, then the kept half of 36 after each of the shifts, chunk by chunk.
                #expect(reads >= (prompt.count + chunk - 1) / chunk && shifts >= 3)
            }
        }
    }

    /// Monarch and Symbio read incrementally (the fast decoder, and the general forward
    /// pass with a `MixerState`); through several context-full shifts both choose what a
    /// recomputation of the whole window chooses.
    @Test(arguments: [ModelConfig.Architecture.monarch, .symbio])
    func mixerModelsShiftTheirContextLikeARecomputation(_ architecture: ModelConfig.Architecture) throws {
        let config = ModelConfig(architecture: architecture, vocabSize: 28, layers: 2, heads: 2, width: 16, context: 9, ffnWidth: 24)
        let model = try makeModel(config, seed: 11)
        for (_, t) in model.parameters where t.rank == 2 { for i in 0..<t.count { t.data[i] *= 20 } }
        var chosen: [[Int32]] = []
        for fast in [true, false] {
            let generator = Generator(model: model, tokenizer: CharTokenizer(charset: .micro), fastDecoding: fast)
            var ids: [Int32] = []
            _ = generator.generate(prompt: [3, 4, 5], options: GenerationOptions(maxTokens: 30, sampling: SamplingParameters(temperature: 0))) {
                ids.append($0.id)
                return true
            }
            chosen.append(ids)
        }
        var window: [Int32] = [3, 4, 5], expected: [Int32] = []
        while expected.count < 30 {
            let logits = Autograd.noGrad { model.logits(window, batch: 1, time: window.count) }.toArray().suffix(28)
            let best = Int32(logits.indices.max { logits[$0] < logits[$1] }! - logits.startIndex)
            expected.append(best)
            window.append(best)
            if window.count > config.context { window = Array(window.suffix(config.context / 2)) }
        }
        #expect(chosen[0] == expected && chosen[1] == expected)
    }
}
