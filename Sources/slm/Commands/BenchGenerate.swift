import ArgumentParser
import Foundation
import SLMGenerate
import SLMModels
import SLMTensor
import SLMText
import SLMTrain

/// Decode speed: time to first token and tokens/s, with the KV cache and (for
/// comparison) recomputing the whole context for every token.
struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Decode speed with and without the KV cache, one stream or several batched (release builds).")

    @Option(help: "A checkpoint or model folder.") var model: String?
    @Option(help: "A preset (random weights of that shape).") var preset: String?
    @Option(help: "A TOML config with a [model] section, or a config.json (random weights).") var config: String?
    @Option(help: "Vocabulary size for --preset/--config models.") var vocabSize = 2000
    @Option(help: "Prompt tokens.") var prompt = 16
    @Option(help: "Tokens generated per timed run.") var tokens = 200
    @Option(help: "Timed runs (the median is reported).") var repeats = 3
    @Flag(help: "Skip the run without the cache (slow for big models).") var cacheOnly = false
    @Option(help: "Sampling temperature (0: greedy, the default).") var temperature = 0.0
    @Option(help: "Nucleus sampling threshold with --temperature (1: off).") var topP = 1.0
    @OptionGroup var decode: DecodeOptions
    @Flag(help: "Time the general forward pass with a KVCache instead of the fast decoder.") var reference = false
    @Option(help: "Concurrent streams decoded together, as the server does (aggregate tokens/s and the gap between tokens; 1: the single-stream figures).")
    var streams = 1
    @Flag(help: "With --streams: step the streams one after another instead of in one batch.") var noBatching = false
    @Flag(help: "Print a JSON object.") var json = false
    @OptionGroup var runtime: RuntimeOptions

    struct Result: Codable {
        var model: String
        var parameters: Int
        var threads: Int
        var weights: String
        var kvCache: String
        var decoder: String
        var promptTokens: Int
        var generatedTokens: Int
        var timeToFirstTokenMs: Double
        var tokensPerSecond: Double
        var tokensPerSecondWithoutCache: Double?
        /// int8 only: share of greedy steps where int8 picks fp32's token, and the largest
        /// logit difference as a share of the largest fp32 logit (on the fp32 token path).
        var int8GreedyAgreement: Double?
        var int8MaxLogitError: Double?
        /// f16 KV cache only: the same two figures against an fp32 cache.
        var kvF16GreedyAgreement: Double?
        var kvF16MaxLogitError: Double?
        /// Fast decoder only: weight bytes one token reads, the memory bandwidth measured
        /// here, and the share of it that the speed implies (the bound for batch-1 decoding).
        var weightBytesPerToken: Int?
        var bandwidthGBs: Double?
        var bandwidthShare: Double?
    }

    func run() throws {
        try runtime.apply()
        let (name, m) = try userFacing { () throws -> (String, any LanguageModel) in
            if let model { return (model, try ModelStore.load(from: URL(fileURLWithPath: model))) }
            if let path = config, path.hasSuffix(".json") { return (path, try makeModel(try ModelConfig.read(from: URL(fileURLWithPath: path)), seed: 1)) }
            guard let source = preset ?? config else { throw CommandError("give --model, --preset or --config") }
            let p = try Preset.load(source, executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath())
            return (source, try makeModel(try p.configs(vocabSize: vocabSize).0, seed: 1))
        }
        guard prompt >= 1, tokens >= 1, repeats >= 1, streams >= 1 else {
            throw CommandError("--prompt, --tokens, --repeats and --streams must be at least 1")
        }
        if reference && decode.kvCache == KVCacheFormat.f16.rawValue {
            throw CommandError("--kv-cache f16 is the fast decoder's; --reference times the model's own fp32 KVCache")
        }
        // --reference times the model's own cache, which is fp32 whatever auto would pick.
        let kvCache = reference ? KVCacheFormat.fp32 : decode.kvCacheFormat
        var rng = RNG(seed: 2)
        let ids = (0..<prompt).map { _ in Int32(rng.next() % UInt64(m.config.vocabSize)) }
        let sampling = SamplingParameters(temperature: temperature, topP: topP, seed: 3)
        if let problem = sampling.problem { throw CommandError(problem) }
        let options = GenerationOptions(maxTokens: tokens, sampling: sampling)
        let generator = Generator(model: m, tokenizer: VocabularyOnly(size: m.config.vocabSize), precision: try decode.precision(for: m),
                                  kvCache: kvCache, fastDecoding: !reference)
        if streams > 1 || noBatching {
            guard prompt + tokens <= m.config.context else {
                throw CommandError("with --streams, --prompt plus --tokens (\(prompt + tokens)) must fit in the model's context of \(m.config.context)")
            }
            return try runStreams(name: name, model: m, generator: generator, prompt: ids, options: options)
        }

        var firstTimes: [Double] = [], rates: [Double] = []
        for run in 0...repeats {  // run 0 warms up
            let started = Date()
            var first: Date?
            let r = generator.generate(prompt: ids, options: options) { _ in
                if first == nil { first = Date() }
                return true
            }
            let end = Date()
            guard run > 0, let first else { continue }
            firstTimes.append(first.timeIntervalSince(started))
            rates.append(Double(r.completionTokens - 1) / max(end.timeIntervalSince(first), 1e-9))
        }
        var withoutCache: Double? = nil
        if !cacheOnly {
            let started = Date()
            var context = ids
            for _ in 0..<min(tokens, 64) {
                let window = Array(context.suffix(m.config.context))
                let logits = Autograd.noGrad { m.logits(window, batch: 1, time: window.count) }
                let row = logits.data + (window.count - 1) * m.config.vocabSize
                context.append(Int32((0..<m.config.vocabSize).max { row[$0] < row[$1] }!))
            }
            withoutCache = Double(min(tokens, 64)) / Date().timeIntervalSince(started)
        }
        var agreement: Double? = nil, logitError: Double? = nil
        if decode.weights == .int8, !reference, let a = m.makeDecoder(precision: .fp32), let b = m.makeDecoder(precision: .int8) {
            (agreement, logitError) = compare(a, b, prompt: ids, steps: min(tokens, m.config.context - prompt))
        }
        var kvAgreement: Double? = nil, kvLogitError: Double? = nil
        if kvCache == .f16, let a = m.makeDecoder(precision: decode.weights),
           let b = m.makeDecoder(precision: decode.weights, kvCache: .f16) {
            (kvAgreement, kvLogitError) = compare(a, b, prompt: ids, steps: min(tokens, m.config.context - prompt))
        }
        let weightBytes = reference ? nil : m.makeDecoder(precision: decode.weights)?.weights.bytesPerToken
        let bandwidth = weightBytes == nil ? nil : Peaks.bandwidthGBs(threads: Parallel.threadCount)
        let rate = median(rates)
        var result = Result(model: name, parameters: m.parameterCount, threads: Parallel.threadCount,
                            weights: decode.weights.rawValue, kvCache: kvCache.rawValue,
                            decoder: reference ? "reference" : "fast", promptTokens: prompt,
                            generatedTokens: tokens, timeToFirstTokenMs: median(firstTimes) * 1e3, tokensPerSecond: rate,
                            tokensPerSecondWithoutCache: withoutCache,
                            int8GreedyAgreement: agreement, int8MaxLogitError: logitError,
                            kvF16GreedyAgreement: kvAgreement, kvF16MaxLogitError: kvLogitError)
        if let weightBytes, let bandwidth, bandwidth > 0 {
            result.weightBytesPerToken = weightBytes
            result.bandwidthGBs = bandwidth
            result.bandwidthShare = Double(weightBytes) * rate / 1e9 / bandwidth
        }
        if json {
            try printJSON(result)
        } else {
            print(String(format: "%@ (%d parameters, %d threads, %@ weights, %@ KV cache, %@ decoder): first token after %.1f ms; %.0f tokens/s with the KV cache%@",
                         name, m.parameterCount, Parallel.threadCount, result.weights, result.kvCache, result.decoder, result.timeToFirstTokenMs, result.tokensPerSecond,
                         withoutCache.map { String(format: ", %.0f tokens/s recomputing the context", $0) } ?? ""))
            if let weightBytes = result.weightBytesPerToken, let bandwidth = result.bandwidthGBs, let share = result.bandwidthShare {
                print(String(format: "weights read per token: %.1f MB; at %.0f tokens/s that is %.1f GB/s, %.0f%% of the %.1f GB/s measured here (the bound: %.0f tokens/s)",
                             Double(weightBytes) / 1e6, rate, Double(weightBytes) * rate / 1e9, share * 100, bandwidth,
                             bandwidth * 1e9 / Double(weightBytes)))
                if share > 1 { print("(above 100%: these weights fit in the CPU's caches, so memory bandwidth does not bound them)") }
            }
            if let agreement, let logitError {
                print(String(format: "int8 vs fp32 over the same tokens: greedy choice agrees on %.1f%% of steps; logits differ by up to %.2f%% of the largest",
                             agreement * 100, logitError * 100))
            }
            if let kvAgreement, let kvLogitError {
                print(String(format: "f16 vs fp32 KV cache over the same tokens: greedy choice agrees on %.1f%% of steps; logits differ by up to %.2f%% of the largest",
                             kvAgreement * 100, kvLogitError * 100))
            }
        }
    }

    /// Steps both decoders along the first one's greedy tokens (an int8 decoder prefills token
    /// by token, so both see the prompt through their own weights): the share of steps
    /// where they choose alike, and the largest logit difference relative to the first's
    /// largest logit.
    private func compare(_ a: IncrementalDecoder, _ b: IncrementalDecoder, prompt: [Int32], steps: Int) -> (Double, Double) {
        var la = Array(a.prefill(prompt)), lb = Array(b.prefill(prompt)), agree = 0, compared = 0, worst: Float = 0
        for _ in 0..<max(steps, 1) {
            compared += 1
            let ta = la.indices.max { la[$0] < la[$1] }!, tb = lb.indices.max { lb[$0] < lb[$1] }!
            if ta == tb { agree += 1 }
            let scale = max(la.map(abs).max() ?? 0, 1e-9)
            worst = max(worst, zip(la, lb).map { abs($0 - $1) }.max()! / scale)
            if a.remaining == 0 { break }
            la = Array(a.step(Int32(ta)))
            lb = Array(b.step(Int32(ta)))
        }
        return (Double(agree) / Double(compared), Double(worst))
    }

    struct StreamsResult: Codable {
        var model: String
        var threads: Int
        var weights: String
        var kvCache: String
        var streams: Int
        var batched: Bool
        var promptTokens: Int
        var tokensPerStream: Int
        var tokensPerSecond: Double
        /// Rounds' wall time, one token per stream each: every stream's gap between tokens.
        var gapP50Ms: Double
        var gapP99Ms: Double
    }

    /// `streams` generations started together (prompts read first, untimed), then rounds of
    /// one token each, read in one batched step as the server does; median over repeats.
    private func runStreams(name: String, model m: any LanguageModel, generator: Generator, prompt ids: [Int32],
                            options: GenerationOptions) throws {
        var rates: [Double] = [], gaps: [Double] = []
        for run in 0...repeats {  // run 0 warms up
            let sessions = (0..<streams).map { _ in generator.start(prompt: ids, options: options) }
            for s in sessions { s.readPrompt(upTo: ids.count) }
            var produced = 0, roundGaps: [Double] = []
            let started = DispatchTime.now().uptimeNanoseconds
            var live = sessions
            while !live.isEmpty {
                let roundStart = DispatchTime.now().uptimeNanoseconds
                var stepped: [GenerationSession] = []
                for s in live {
                    if case .token = s.next(deferringRead: !noBatching) {
                        produced += 1
                        stepped.append(s)
                    }
                }
                generator.readPending(stepped)
                live = stepped.filter { $0.result == nil }
                roundGaps.append(Double(DispatchTime.now().uptimeNanoseconds - roundStart) / 1e6)
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            guard run > 0 else { continue }
            rates.append(Double(produced) / max(seconds, 1e-9))
            gaps += roundGaps
        }
        gaps.sort()
        let result = StreamsResult(model: name, threads: Parallel.threadCount, weights: decode.weights.rawValue,
                                   kvCache: generator.kvCache.rawValue, streams: streams,
                                   batched: !noBatching, promptTokens: ids.count, tokensPerStream: options.maxTokens,
                                   tokensPerSecond: median(rates), gapP50Ms: gaps[gaps.count / 2],
                                   gapP99Ms: gaps[min(gaps.count - 1, gaps.count * 99 / 100)])
        if json {
            try printJSON(result)
        } else {
            print(String(format: "%@ (%d parameters, %d threads, %@ weights, %@ KV cache): %d streams %@, %d tokens each after %d: %.0f tokens/s in all; between tokens p50 %.2f ms, p99 %.2f ms",
                         name, m.parameterCount, result.threads, result.weights, result.kvCache, streams, noBatching ? "one after another" : "batched",
                         options.maxTokens, ids.count, result.tokensPerSecond, result.gapP50Ms, result.gapP99Ms))
        }
    }

    private func median(_ xs: [Double]) -> Double { xs.isEmpty ? .nan : xs.sorted()[xs.count / 2] }
}

/// A stand-in tokenizer for timing models with random weights: ids are bytes' worth of nothing.
struct VocabularyOnly: Tokenizer {
    let size: Int
    var kind: String { "none" }
    var vocabularySize: Int { size }
    var specialTokens: [String: Int32] { [:] }
    func encode(_ text: String) -> [Int32] { [] }
    func tokenBytes(_ id: Int32) -> [UInt8]? { id >= 0 && Int(id) < size ? [] : nil }
    func save(to directory: URL) throws {}
}
