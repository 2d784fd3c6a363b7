import ArgumentParser
import CSLMKernels
import Foundation
import SLMGenerate
import SLMModels
import SLMTensor
import SLMText

/// Sampling flags shared by generate and chat.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Tokens to generate at most.") var maxTokens = 200
    @Option(help: "Temperature (0: greedy).") var temperature = 0.8
    @Option(help: "Keep the k most likely tokens (0: off).") var topK = 0
    @Option(help: "Nucleus sampling: keep the most likely tokens holding this much probability (1: off).") var topP = 1.0
    @Option(help: "Keep tokens at least this fraction as likely as the best (0: off).") var minP = 0.0
    @Option(help: "Repetition penalty (1: off).") var repetitionPenalty = 1.0
    @Option(help: "Presence penalty, as OpenAI's.") var presencePenalty = 0.0
    @Option(help: "Frequency penalty, as OpenAI's.") var frequencyPenalty = 0.0
    @Option(help: "Stop at this text (repeatable; not included in the output).") var stop: [String] = []
    @Option(help: "Seed: the same seed gives the same text.") var seed: UInt64 = 0

    func options() throws -> GenerationOptions {
        let s = SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repetitionPenalty,
                                   presencePenalty: presencePenalty, frequencyPenalty: frequencyPenalty, seed: seed)
        if let problem = s.problem { throw CommandError(problem) }
        guard maxTokens >= 1 else { throw CommandError("--max-tokens must be at least 1") }
        return GenerationOptions(maxTokens: maxTokens, sampling: s, stop: stop)
    }
}

extension WeightPrecision: ExpressibleByArgument {}

/// How generation stores the model's weights (generate, chat, serve, bench generate).
struct DecodeOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Decoder weights: fp32 (as trained), int8 (weight-only, one scale per output row), or ternary (BitNet models only).",
        discussion: "int8 reads a quarter of the bytes per token, so it decodes 2-4x faster; logits move by about 1-3% and greedy choices rarely change (docs/BENCHMARKS.md). A model trained ternary (training.quantization) always decodes its blocks from packed 2-bit weights with int8 activations, as it trained; ternary also makes its output head int8."))
    var weights: WeightPrecision = .fp32

    @Option(help: ArgumentHelp(
        "How the decoder keeps the keys and values of the context: f16 (half the bytes), fp32 (as computed), or auto: f16 where the CPU converts half floats in hardware (the AVX2 and AVX-512 kernels), else fp32.",
        discussion: "Attention reads the whole cache for every token, so with many concurrent streams or a long context these bytes come to bound decoding; f16 halves them, rounding each key and value to about 3 significant digits, as llama.cpp's default cache does. Logits then differ from fp32's by about 0.01-0.1% of the largest (docs/BENCHMARKS.md); fp32 matches the model's forward pass to rounding."))
    var kvCache = "auto"

    func validate() throws {
        guard KVCacheFormat(setting: kvCache) != nil else {
            throw ValidationError("--kv-cache must be auto, fp32 or f16, not \(kvCache)")
        }
    }

    /// The cache format, `auto` resolved for the kernels this process runs (`SLM_ISA` caps them).
    var kvCacheFormat: KVCacheFormat { KVCacheFormat(setting: kvCache) ?? .fp32 }

    /// The precision, refused where the model cannot decode in it.
    func precision(for model: any LanguageModel) throws -> WeightPrecision {
        try userFacing { try weights.check(for: model.config) }
        return weights
    }
}

func loadBundle(_ path: String) throws -> ModelBundle {
    try userFacing { try ModelBundle(directory: URL(fileURLWithPath: path)) }
}

func reportDropped(_ dropped: [String: Int]) {
    guard !dropped.isEmpty else { return }
    let list = dropped.sorted { $0.key < $1.key }.map { "\($0.key.debugDescription)×\($0.value)" }.joined(separator: ", ")
    printError("note: the model cannot represent \(list); dropped from the prompt")
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt with a trained model.")

    @Option(help: "Checkpoint or model folder.") var model: String
    @Option(help: "The text to continue.") var prompt: String
    @Flag(help: "Print text as it is generated.") var stream = false
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var decode: DecodeOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        let bundle = try loadBundle(model)
        let options = try sampling.options()
        let (ids, dropped) = bundle.encodePrompt(prompt)
        reportDropped(dropped)
        let generator = Generator(model: bundle.model, tokenizer: bundle.tokenizer, precision: try decode.precision(for: bundle.model),
                                  kvCache: decode.kvCacheFormat)
        let started = Date()
        let result = generator.generate(prompt: ids, options: options) { token in
            if stream, !token.text.isEmpty { print(token.text, terminator: ""); slm_stdout_flush() }
            return true
        }
        if stream { print("") } else { print(result.text) }
        let seconds = Date().timeIntervalSince(started)
        printError(String(format: "%d prompt + %d generated tokens in %.2f s (%.0f tokens/s); finish: %@", result.promptTokens,
                          result.completionTokens, seconds, Double(result.completionTokens) / max(seconds, 1e-9), result.finishReason.rawValue))
    }
}

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk with a model in the terminal (empty line or /quit ends).",
        discussion: "Each turn is added to a transcript in the chat template (see docs/ARCHITECTURE.md) and the model continues it.")

    @Option(help: "Checkpoint or model folder.") var model: String
    @Option(help: "A system message to start the conversation.") var system: String?
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var decode: DecodeOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        let bundle = try loadBundle(model)
        var options = try sampling.options()
        options.stop += ChatTemplate.stops
        let generator = Generator(model: bundle.model, tokenizer: bundle.tokenizer, precision: try decode.precision(for: bundle.model),
                                  kvCache: decode.kvCacheFormat)
        var messages: [ChatMessage] = system.map { [ChatMessage(role: .system, content: $0)] } ?? []
        print("chatting with \(bundle.name) (\(bundle.model.parameterCount) parameters); empty line or /quit to end")
        while true {
            print("you> ", terminator: "")
            slm_stdout_flush()
            guard let line = readLine(), !line.isEmpty, line != "/quit" else { break }
            messages.append(ChatMessage(role: .user, content: line))
            let (ids, dropped) = bundle.encodePrompt(ChatTemplate.render(messages))
            reportDropped(dropped)
            print("model> ", terminator: "")
            let result = generator.generate(prompt: ids, options: options) { token in
                print(token.text, terminator: "")
                slm_stdout_flush()
                return true
            }
            print("")
            messages.append(ChatMessage(role: .assistant, content: result.text.trimmingCharacters(in: .whitespaces)))
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Loss, perplexity, bits per byte (and per character) of a model on a data folder or a text file.")

    @Option(help: "Checkpoint or model folder.") var model: String
    @Option(help: "A tokenized data folder (its val.bin) or a text file.") var data: String
    @Option(help: "Evaluate at most this many tokens.") var maxTokens: Int?
    @Option(help: "Also generate this many characters and report their diversity.") var generate: Int?
    @Flag(help: "Print a JSON object.") var json = false
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        let bundle = try loadBundle(model)
        let (tokens, bytesPerToken) = try userFacing { () throws -> ([Int32], Double) in
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: data, isDirectory: &isDir) else { throw PipelineError.notFound(data) }
            if isDir.boolValue {
                let meta = try DatasetMeta.read(from: URL(fileURLWithPath: data))
                let file = try TokenFile(url: URL(fileURLWithPath: data).appendingPathComponent("val.bin"), width: meta.width)
                // The charsets are ASCII, so characters are bytes.
                return (file.window(at: 0, length: file.count), Double(meta.validationCharacters) / Double(max(meta.validationTokens, 1)))
            }
            let text = try String(contentsOfFile: data, encoding: .utf8)
            let ids = bundle.encodePrompt(text).ids
            return (ids, Double(text.utf8.count) / Double(max(ids.count, 1)))
        }
        guard tokens.count > bundle.model.config.context else {
            throw CommandError("\(data) holds \(tokens.count) tokens; evaluation needs more than the context (\(bundle.model.config.context))")
        }
        let report = Evaluation.evaluate(bundle.model, tokens: tokens, bytesPerToken: bytesPerToken,
                                         characterLevel: bundle.tokenizer is CharTokenizer, maxTokens: maxTokens)
        var diversity: DiversityReport? = nil
        if let generate {
            var options = GenerationOptions(maxTokens: generate, sampling: SamplingParameters(temperature: 0.8, seed: 1))
            options.maxTokens = generate
            let result = Generator(model: bundle.model, tokenizer: bundle.tokenizer).generate(prompt: Array(tokens.prefix(16)), options: options)
            diversity = Evaluation.diversity(result.text)
        }
        if json {
            struct Output: Encodable { var model: String; var evaluation: EvaluationReport; var diversity: DiversityReport? }
            try printJSON(Output(model: bundle.name, evaluation: report, diversity: diversity))
            return
        }
        print(String(format: "%@: loss %.4f | perplexity %.2f | %.3f bits/byte%@ | %d tokens at %.0f tokens/s", bundle.name,
                     report.loss, report.perplexity, report.bitsPerByte,
                     report.bitsPerCharacter.map { String(format: " | %.3f bits/char", $0) } ?? "", report.tokens, report.tokensPerSecond))
        for (name, values) in report.layers.sorted(by: { $0.key < $1.key }) {
            print("\(name.replacingOccurrences(of: "_", with: " ")) per layer: " + values.map { String(format: "%.4f", $0) }.joined(separator: " "))
        }
        if let d = diversity {
            print(String(format: "generated %d characters: distinct-1 %.3f, distinct-2 %.3f, distinct-3 %.3f, 4-gram repetition %.3f",
                         d.characters, d.distinct1, d.distinct2, d.distinct3, d.repetition4))
        }
    }
}
