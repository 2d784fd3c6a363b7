import CSLMKernels
import Foundation
import SLMTensor
import SLMTestSupport
import Testing
@testable import SLMModels

/// The batch-1 decoder against the general forward pass with a KVCache.
@Suite struct DecoderTests {
    static let configs: [ModelConfig] = [
        // Widths and head sizes that are not multiples of the vector width, so every
        // kernel's tail runs; GQA with kvHeads < heads; biases and tying both ways.
        ModelConfig(architecture: .gpt2, vocabSize: 37, layers: 2, heads: 4, width: 40, context: 20),
        ModelConfig(architecture: .gpt2, vocabSize: 37, layers: 2, heads: 2, width: 24, context: 20, bias: false, tiedEmbeddings: true),
        ModelConfig(architecture: .llama, vocabSize: 37, layers: 2, heads: 4, kvHeads: 2, width: 48, context: 20, ffnWidth: 72),
        ModelConfig(architecture: .llama, vocabSize: 37, layers: 2, heads: 6, kvHeads: 3, width: 36, context: 20, ffnWidth: 40,
                    bias: true, tiedEmbeddings: false),
        ModelConfig(architecture: .llama, vocabSize: 37, layers: 1, heads: 4, kvHeads: 1, width: 32, context: 20, ffnWidth: 64),
        // Large enough that GEMVs and attention are split across threads.
        ModelConfig(architecture: .gpt2, vocabSize: 300, layers: 2, heads: 4, width: 128, context: 96),
        ModelConfig(architecture: .llama, vocabSize: 300, layers: 2, heads: 4, kvHeads: 2, width: 128, context: 96, ffnWidth: 352,
                    tiedEmbeddings: false),
        // The attention-free models: blocks of 4 and 5 positions (the 16 tokens of a test
        // cross several), and a width that splits the SwiGLU GEMVs across threads.
        ModelConfig(architecture: .monarch, vocabSize: 37, layers: 2, heads: 4, width: 40, context: 16, ffnWidth: 72),
        ModelConfig(architecture: .symbio, vocabSize: 37, layers: 2, heads: 2, width: 24, context: 25, ffnWidth: 40),
        ModelConfig(architecture: .symbio, vocabSize: 300, layers: 2, heads: 4, width: 128, context: 64, ffnWidth: 352),
        // Mixtures of experts: routed SwiGLU on the decoder (top 2 of 4; top 1 of 3 with a
        // separate head; 2 of 8 wide enough to split across threads).
        ModelConfig(architecture: .llama, vocabSize: 37, layers: 2, heads: 4, kvHeads: 2, width: 48, context: 20, ffnWidth: 72,
                    experts: 4, expertsActive: 2),
        ModelConfig(architecture: .llama, vocabSize: 37, layers: 1, heads: 2, width: 32, context: 20, ffnWidth: 40,
                    tiedEmbeddings: false, experts: 3, expertsActive: 1),
        ModelConfig(architecture: .llama, vocabSize: 300, layers: 2, heads: 4, kvHeads: 2, width: 128, context: 96, ffnWidth: 352,
                    experts: 8, expertsActive: 2),
    ]

    /// Weights of unit-scale activations (initial weights give logits near zero, where
    /// any error looks small).
    static func model(_ config: ModelConfig, seed: UInt64 = 1) throws -> any LanguageModel {
        let m = try makeModel(config, seed: seed)
        for (i, (name, t)) in m.parameters.enumerated() {
            let isNorm = name.contains("norm") || name.contains("ln_")
            let scale: Float = t.rank == 2 ? (name.contains("wpe") ? 0.5 : 1.0 / Float(config.width).squareRoot()) : 0.2
            let noise = randomArray(t.count, seed: seed &* 1000 &+ UInt64(i), scale: scale)
            for k in 0..<t.count { t.data[k] = (isNorm && !name.hasSuffix("bias") ? 1 : 0) + noise[k] }
        }
        return m
    }

    static func tokens(_ n: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var rng = RNG(seed: seed)
        return (0..<n).map { _ in Int32(rng.next() % UInt64(vocab)) }
    }

    /// Logits of the reference path (the general forward pass with the model's inference
    /// state) for `prompt`, then for each of `steps` one at a time.
    static func referenceLogits(_ m: any LanguageModel, prompt: [Int32], steps: [Int32]) -> [[Float]] {
        let state = m.makeInferenceState(), v = m.config.vocabSize
        return Autograd.noGrad {
            let first = m.logits(prompt, state: state).toArray()
            return [Array(first[((prompt.count - 1) * v)...])] + steps.map { m.logits([$0], state: state).toArray() }
        }
    }

    static func expectLogitsClose(_ a: [Float], _ b: [Float], relative: Float, _ what: String,
                                  sourceLocation: SourceLocation = #_sourceLocation) {
        let scale = max(1, b.map(abs).max() ?? 0), diff = maxAbsDifference(a, b)
        #expect(diff <= relative * scale, "\(what): max |Δ| \(diff) for logits up to \(scale)", sourceLocation: sourceLocation)
    }

    @Test(arguments: configs)
    func matchesTheForwardPass(_ config: ModelConfig) throws {
        let m = try Self.model(config)
        let prompt = Self.tokens(7, vocab: config.vocabSize, seed: 3), steps = Self.tokens(9, vocab: config.vocabSize, seed: 4)
        let expected = Self.referenceLogits(m, prompt: prompt, steps: steps)
        for threads in [1, 2] {
            // Batched prefill (fp32, empty cache), and the same prompt stepped token by token.
            for batched in [true, false] {
                let d = try #require(m.makeDecoder())
                d.threadCount = threads
                let first = batched ? Array(d.prefill(prompt)) : prompt.map { Array(d.step($0)) }.last!
                Self.expectLogitsClose(first, expected[0], relative: 1e-4, "\(config.architecture) prompt, batched \(batched), \(threads) threads")
                for (i, t) in steps.enumerated() {
                    Self.expectLogitsClose(Array(d.step(t)), expected[i + 1], relative: 1e-4, "\(config.architecture) step \(i), \(threads) threads")
                }
                #expect(d.length == prompt.count + steps.count)
            }
        }
    }

    /// Reads longer than `IncrementalDecoder.stepRows` (128): an fp32 prompt into an empty
    /// cache and its long continuation take the general forward pass, a short read after
    /// them the batched decode step; int8 reads take batched steps of 128 rows. Each leaves
    /// the decoder where the reference (or stepping token by token) does.
    @Test(arguments: [ModelConfig.Architecture.gpt2, .llama])
    func longReads(_ architecture: ModelConfig.Architecture) throws {
        let config = ModelConfig(architecture: architecture, vocabSize: 37, layers: 2, heads: 2, width: 24, context: 330)
        let m = try Self.model(config)
        let prompt = Self.tokens(310, vocab: 37, seed: 3), steps = Self.tokens(4, vocab: 37, seed: 4)
        let expected = Self.referenceLogits(m, prompt: prompt, steps: steps)
        let d = try #require(m.makeDecoder())
        _ = d.prefill(Array(prompt[0..<150]))
        _ = d.prefill(Array(prompt[150..<290]))
        let first = Array(d.prefill(Array(prompt[290...])))
        Self.expectLogitsClose(first, expected[0], relative: 1e-4, "\(architecture) fp32 prompt in three reads")
        for (i, t) in steps.enumerated() {
            Self.expectLogitsClose(Array(d.step(t)), expected[i + 1], relative: 1e-4, "\(architecture) fp32 step \(i)")
        }
        let read = try #require(m.makeDecoder(precision: .int8)), stepped = try #require(m.makeDecoder(precision: .int8))
        let got = Array(read.prefill(prompt)), want = prompt.map { Array(stepped.step($0)) }.last!
        Self.expectLogitsClose(got, want, relative: 1e-4, "\(architecture) int8 prompt read in batched steps")
        Self.expectLogitsClose(Array(read.step(steps[0])), Array(stepped.step(steps[0])), relative: 1e-4, "\(architecture) int8 after it")
    }

    /// BitNet b1.58 models decode from packed ternary weights with int8 activations, as
    /// they trained: the decoder against the general forward pass (whose BitLinears
    /// quantise in fp32). Widths of one padded group (48), two groups (160), and a SwiGLU
    /// width that is not a multiple of 128, with and without SubLN. The tolerance allows
    /// an activation that lands on a rounding boundary in one path and not the other.
    @Test(arguments: [(48, 72, true), (160, 200, false), (256, 640, true)])
    func ternaryMatchesTheForwardPass(_ shape: (width: Int, ffn: Int, subNorm: Bool)) throws {
        let config = ModelConfig(architecture: .llama, vocabSize: 53, layers: 2, heads: 4, kvHeads: 2, width: shape.width, context: 24,
                                 ffnWidth: shape.ffn, quantization: .ternary, subNorm: shape.subNorm)
        let m = try Self.model(config)
        let prompt = Self.tokens(6, vocab: 53, seed: 3), steps = Self.tokens(8, vocab: 53, seed: 4)
        let expected = Self.referenceLogits(m, prompt: prompt, steps: steps)
        for precision in [WeightPrecision.fp32, .int8, .ternary] {
            let d = try #require(m.makeDecoder(precision: precision))
            #expect(d.weights.bytesPerToken < (precision == .fp32 ? 53 * shape.width * 4 + 53 * 4 : 53 * shape.width + 53 * 4) + 2 * 6 * shape.width * shape.ffn,
                    "blocks stored at 2 bits per weight")
            // ternary and int8 make the head int8: compare those loosely, as int8StaysCloseToFP32 does.
            let tolerance: Float = precision == .fp32 ? 1e-2 : 6e-2
            let first = prompt.map { Array(d.step($0)) }.last!
            Self.expectLogitsClose(first, expected[0], relative: tolerance, "ternary \(shape) prompt, \(precision)")
            for (i, t) in steps.enumerated() {
                Self.expectLogitsClose(Array(d.step(t)), expected[i + 1], relative: tolerance, "ternary \(shape) step \(i), \(precision)")
            }
        }
        #expect(throws: ConfigError.self) { try WeightPrecision.ternary.check(for: Self.configs[2]) }
    }

    static let bitnet = ModelConfig(architecture: .llama, vocabSize: 53, layers: 2, heads: 4, kvHeads: 2, width: 160, context: 24,
                                    ffnWidth: 200, quantization: .ternary, subNorm: true)

    /// Streams stepped together (one matrix product per weight matrix for all of them) give
    /// each stream the logits it gets alone, at different positions and over several steps,
    /// so the keys, values and mixer states a batched step stores are right too: GPT-2,
    /// LLaMA with biases, GQA and untied heads, mixtures of experts routed apart per stream,
    /// Monarch and Symbio, in fp32 (GEMMs) and int8 and ternary with SubLN (batched GEMVs).
    @Test(arguments: [(configs[0], WeightPrecision.fp32), (configs[3], .fp32), (configs[6], .fp32), (configs[2], .int8),
                      (configs[6], .int8), (configs[10], .fp32), (configs[12], .int8), (configs[7], .fp32), (configs[8], .fp32),
                      (configs[9], .int8), (bitnet, .ternary), (bitnet, .fp32)])
    func streamsSteppedTogetherMatchSteppedAlone(_ setup: (config: ModelConfig, precision: WeightPrecision)) throws {
        let m = try Self.model(setup.config)
        let weights = try #require(m.decodingWeights(precision: setup.precision))
        let vocab = setup.config.vocabSize
        let prompts = (0..<3).map { Self.tokens(2 + 3 * $0, vocab: vocab, seed: UInt64(10 + $0)) }
        let alone = prompts.map { p in IncrementalDecoder(weights).then { _ = $0.prefill(p) } }
        let together = prompts.map { p in IncrementalDecoder(weights).then { _ = $0.prefill(p) } }
        for round in 0..<4 {
            let tokens = Self.tokens(3, vocab: vocab, seed: UInt64(20 + round))
            let expected = zip(alone, tokens).map { Array($0.step($1)) }
            let got = IncrementalDecoder.step(together, tokens: tokens).map { Array($0) }
            for i in 0..<3 {
                Self.expectLogitsClose(got[i], expected[i], relative: 1e-4, "\(setup.config.architecture) \(setup.precision) stream \(i), round \(round)")
            }
        }
        #expect(zip(alone, together).allSatisfy { $0.length == $1.length })
    }

    /// Prompt chunks read in one batched step beside single tokens of other streams (every
    /// token a row at its own position) leave each stream where reading alone does: the
    /// logits after each chunk, and the next steps' (so the keys, values and mixer states
    /// of every row were stored). Chunks attend to their own earlier rows in the same
    /// parallel region, the case a single token per stream never meets.
    @Test(arguments: [(configs[0], WeightPrecision.fp32), (configs[3], .fp32), (configs[6], .int8), (configs[10], .fp32),
                      (configs[7], .fp32), (configs[8], .fp32), (bitnet, .ternary)])
    func promptChunksReadTogetherMatchReadAlone(_ setup: (config: ModelConfig, precision: WeightPrecision)) throws {
        let m = try Self.model(setup.config)
        let weights = try #require(m.decodingWeights(precision: setup.precision))
        let vocab = setup.config.vocabSize
        let starts = (0..<3).map { Self.tokens(1 + 2 * $0, vocab: vocab, seed: UInt64(30 + $0)) }
        let alone = starts.map { p in IncrementalDecoder(weights).then { _ = $0.prefill(p) } }
        let together = starts.map { p in IncrementalDecoder(weights).then { _ = $0.prefill(p) } }
        for (round, sizes) in [[5, 1, 3], [1, 4, 1], [1, 1, 1]].enumerated() {
            let chunks = sizes.enumerated().map { Self.tokens($1, vocab: vocab, seed: UInt64(40 + 3 * round + $0)) }
            // Alone: token by token, the slow path every other read is checked against.
            let expected = zip(alone, chunks).map { d, chunk in chunk.map { Array(d.step($0)) }.last! }
            let got = IncrementalDecoder.read(together, chunks: chunks).map { Array($0) }
            for i in 0..<3 {
                Self.expectLogitsClose(got[i], expected[i], relative: 1e-4, "\(setup.config.architecture) \(setup.precision) stream \(i), round \(round)")
            }
        }
        #expect(zip(alone, together).allSatisfy { $0.length == $1.length })
    }

    /// After a reset (what the generator does when the context is full) the decoder
    /// matches a fresh reference on the kept tokens, wherever its old entries were.
    @Test(arguments: [configs[0], configs[2], configs[7], configs[8], configs[10]])
    func resetAfterAFullContext(_ config: ModelConfig) throws {
        let m = try Self.model(config, seed: 7)
        let all = Self.tokens(config.context, vocab: config.vocabSize, seed: 5)
        let d = try #require(m.makeDecoder())
        _ = d.prefill(Array(all.prefix(5)))
        for t in all.dropFirst(5) { _ = d.step(t) }
        #expect(d.remaining == 0)
        let kept = Array(all.suffix(config.context / 2)), next = Self.tokens(4, vocab: config.vocabSize, seed: 6)
        d.reset()
        let expected = Self.referenceLogits(m, prompt: kept, steps: next)
        Self.expectLogitsClose(Array(d.prefill(kept)), expected[0], relative: 1e-4, "re-read half")
        for (i, t) in next.enumerated() {
            Self.expectLogitsClose(Array(d.step(t)), expected[i + 1], relative: 1e-4, "after the shift, step \(i)")
        }
    }

    /// int8 weights against fp32 on the same tokens. Bounds (documented in
    /// docs/BENCHMARKS.md): per step, |Δ| / |fp32 logits| (Euclidean) under 6% and the
    /// largest |Δ| under 10% of the largest logit; the greedy choice agrees on at least
    /// 90% of steps. Measured on these random models: 1.6% (GPT-2) and 3.4% (LLaMA)
    /// relative, 2–4% worst element, 39 and 40 of 40 greedy choices.
    @Test(arguments: [configs[5], configs[6], configs[9], configs[12]])
    func int8StaysCloseToFP32(_ config: ModelConfig) throws {
        let m = try Self.model(config, seed: 11)
        let fp32 = try #require(m.makeDecoder(precision: .fp32)), int8 = try #require(m.makeDecoder(precision: .int8))
        #expect(int8.weights.bytesPerToken * 3 < fp32.weights.bytesPerToken)
        var token: Int32 = 1, agree = 0, worst: Float = 0, worstRMS: Float = 0
        let steps = 40
        for _ in 0..<steps {
            let a = Array(fp32.step(token)), b = Array(int8.step(token))
            worst = max(worst, maxAbsDifference(a, b) / max(1, a.map(abs).max()!))
            let norm = a.reduce(0) { $0 + $1 * $1 }.squareRoot(), diff = zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot()
            worstRMS = max(worstRMS, diff / norm)
            let top = a.indices.max { a[$0] < a[$1] }!, topInt8 = b.indices.max { b[$0] < b[$1] }!
            if top == topInt8 { agree += 1 }
            token = Int32(top)  // both follow the fp32 choices
        }
        #expect(worstRMS < 0.06, "int8 logits differ by \(worstRMS) (relative Euclidean)")
        #expect(worst < 0.1, "int8 logits differ by up to \(worst) of the largest logit")
        #expect(agree * 10 >= steps * 9, "int8 agreed with fp32's greedy choice on \(agree) of \(steps) steps")
    }

    /// `--kv-cache auto` is f16 on the kernel levels that widen halves in hardware and fp32
    /// on the portable one; named formats are taken as named, anything else refused.
    @Test func kvCacheSettings() {
        #expect(KVCacheFormat(setting: "auto", isa: SLM_ISA_SCALAR) == .fp32)
        #expect(KVCacheFormat(setting: "auto", isa: SLM_ISA_AVX2) == .f16)
        #expect(KVCacheFormat(setting: "auto", isa: SLM_ISA_AVX512) == .f16)
        for isa in [SLM_ISA_SCALAR, SLM_ISA_AVX2] {
            #expect(KVCacheFormat(setting: "fp32", isa: isa) == .fp32)
            #expect(KVCacheFormat(setting: "f16", isa: isa) == .f16)
        }
        #expect(KVCacheFormat(setting: "F16") == nil)
        #expect(KVCacheFormat(setting: "bf16") == nil)
        #expect(KVCacheFormat(setting: "") == nil)
    }

    /// An f16 KV cache rounds each key and value once (relative error at most 2^-11): over
    /// 40 greedy steps the logits stay within 0.5% of the fp32 cache's largest logit
    /// (measured: 0.04–0.07% on these random models) and the
    /// greedy choices agree; streams stepped together with f16 caches match each stepped
    /// alone (the batched step stores and reads the same halves).
    @Test(arguments: [configs[0], configs[2], configs[6]])
    func f16CacheStaysCloseToFP32(_ config: ModelConfig) throws {
        let m = try Self.model(config, seed: 11)
        let fp32 = try #require(m.makeDecoder()), f16 = try #require(m.makeDecoder(kvCache: .f16))
        #expect(f16.kvCache == .f16)
        var token: Int32 = 1, agree = 0, worst: Float = 0
        let steps = min(40, config.context)
        for _ in 0..<steps {
            let a = Array(fp32.step(token)), b = Array(f16.step(token))
            worst = max(worst, maxAbsDifference(a, b) / max(1, a.map(abs).max()!))
            let top = a.indices.max { a[$0] < a[$1] }!, topF16 = b.indices.max { b[$0] < b[$1] }!
            if top == topF16 { agree += 1 }
            token = Int32(top)
        }
        #expect(worst > 0, "an f16 cache should round something")
        #expect(worst < 0.005, "f16-cache logits differ by up to \(worst) of the largest logit")
        #expect(agree * 10 >= steps * 9, "f16 agreed with fp32's greedy choice on \(agree) of \(steps) steps")

        let weights = try #require(m.decodingWeights())
        let prompts = (0..<3).map { Self.tokens(2 + 3 * $0, vocab: config.vocabSize, seed: UInt64(10 + $0)) }
        let alone = prompts.map { p in IncrementalDecoder(weights, kvCache: .f16).then { _ = $0.prefill(p) } }
        let together = prompts.map { p in IncrementalDecoder(weights, kvCache: .f16).then { _ = $0.prefill(p) } }
        for round in 0..<3 {
            let tokens = Self.tokens(3, vocab: config.vocabSize, seed: UInt64(20 + round))
            let expected = zip(alone, tokens).map { Array($0.step($1)) }
            let got = IncrementalDecoder.step(together, tokens: tokens).map { Array($0) }
            for i in 0..<3 { Self.expectLogitsClose(got[i], expected[i], relative: 1e-4, "f16 stream \(i), round \(round)") }
        }
    }

    /// Quantisation round trip: every weight within half a step of its row's scale.
    @Test func quantizationIsWithinHalfAStep() {
        let rows = 5, cols = 37
        var w = randomArray(rows * cols, seed: 9)
        for k in 0..<cols { w[2 * cols + k] = 0 }  // an all-zero row stays zero
        let (q, s) = w.withUnsafeBufferPointer { DecodeMatrix.quantize($0.baseAddress!, rows: rows, cols: cols, arena: WeightArena()) }
        #expect(s.pointer[2] == 0)
        for r in 0..<rows {
            for k in 0..<cols {
                let back = Float(q.pointer[r * cols + k]) * s.pointer[r]
                #expect(abs(back - w[r * cols + k]) <= s.pointer[r] * 0.5 + 1e-7)
            }
        }
    }
}

extension IncrementalDecoder {
    /// The decoder after `body` ran on it (a test's shorthand).
    func then(_ body: (IncrementalDecoder) -> Void) -> IncrementalDecoder {
        body(self)
        return self
    }
}
