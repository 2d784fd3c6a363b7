import ArgumentParser
import Foundation
import SLMGenerate
import SLMModels
import SLMTensor
import SLMText
import SLMTrain

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One table for several models: size, validation loss, bits per byte, training and generation speed, memory.",
        discussion: """
        Validation loss and bits per byte come from --data when given (the first --max-tokens of its val.bin), \
        else from the checkpoint's best validation loss and its data's characters per token. Training speed is the \
        median tokens/s in the run's metrics.jsonl; generation speed is measured here (64 greedy tokens after a \
        16-token prompt). Memory is the weights plus a full inference state (KV cache, or the \
        mixers' inputs and block products) in float32; "active" counts the parameters one \
        token uses (a mixture of experts runs only some of its experts).
        """)

    @Argument(help: "Checkpoint or model folders.") var models: [String]
    @Option(help: "A tokenized data folder to evaluate every model on (same tokenizer required).") var data: String?
    @Option(help: "Tokens to evaluate per model with --data.") var maxTokens = 50_000
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var runtime: RuntimeOptions

    struct Row: Codable {
        var model: String
        var parameters: Int
        /// Parameters one token uses (fewer than `parameters` for a mixture of experts).
        var activeParameters: Int
        var validationLoss: Double?
        var bitsPerByte: Double?
        var trainTokensPerSecond: Double?
        var generateTokensPerSecond: Double
        var memoryMiB: Double
        /// Per-layer figures such as SymbioSLM's gate entropies.
        var layers: [String: [Double]]
    }

    func run() throws {
        try runtime.apply()
        guard !models.isEmpty else { throw CommandError("name at least one model folder") }
        var rows: [Row] = []
        for path in models {
            let bundle = try loadBundle(path)
            let m = bundle.model, c = m.config
            var loss: Double? = nil, bpb: Double? = nil
            if let data {
                let meta = try userFacing { try DatasetMeta.read(from: URL(fileURLWithPath: data)) }
                guard meta.vocabularySize == c.vocabSize else {
                    throw CommandError("\(path): its vocabulary (\(c.vocabSize)) differs from \(data)'s (\(meta.vocabularySize))")
                }
                let file = try userFacing { try TokenFile(url: URL(fileURLWithPath: data).appendingPathComponent("val.bin"), width: meta.width) }
                let r = Evaluation.evaluate(m, tokens: file.window(at: 0, length: min(file.count, maxTokens + 1)),
                                            bytesPerToken: Double(meta.validationCharacters) / Double(max(meta.validationTokens, 1)),
                                            characterLevel: bundle.tokenizer is CharTokenizer)
                (loss, bpb) = (r.loss, r.bitsPerByte)
            } else if let state = try? Checkpoint.readState(bundle.directory), let best = state.bestValidationLoss {
                loss = best
                if let meta = try? DatasetMeta.read(from: bundle.directory, file: "data_meta.json") {
                    bpb = best / log(2) / (Double(meta.validationCharacters) / Double(max(meta.validationTokens, 1)))
                }
            }
            let memory = Double(m.parameterCount * 4 + m.makeInferenceState().byteCount) / 1_048_576
            rows.append(Row(model: path, parameters: m.parameterCount, activeParameters: c.activeParameterCount,
                            validationLoss: loss, bitsPerByte: bpb, trainTokensPerSecond: trainingSpeed(bundle.directory),
                            generateTokensPerSecond: decodeSpeed(m, bundle.tokenizer), memoryMiB: memory, layers: m.layerMetrics))
        }
        if json {
            try printJSON(rows)
            return
        }
        let width = max(5, rows.map(\.model.count).max() ?? 5)
        print("model".padding(toLength: width, withPad: " ", startingAt: 0)
            + "  parameters      active  val loss  bits/byte  train tok/s  gen tok/s  memory MiB")
        func f(_ x: Double?, _ format: String) -> String { x.map { String(format: format, $0) } ?? "—" }
        for r in rows {
            let name = r.model.padding(toLength: width, withPad: " ", startingAt: 0)
            let quality = f(r.validationLoss, "%8.4f") + "  " + f(r.bitsPerByte, "%9.3f")
            let speed = f(r.trainTokensPerSecond, "%11.0f") + String(format: "  %9.0f  %10.1f", r.generateTokensPerSecond, r.memoryMiB)
            print(name + String(format: "  %10d  %10d", r.parameters, r.activeParameters) + "  " + quality + "  " + speed)
        }
        for r in rows {
            for (metric, values) in r.layers.sorted(by: { $0.key < $1.key }) {
                print("\(r.model): \(metric.replacingOccurrences(of: "_", with: " ")) per layer "
                    + values.map { String(format: "%.4f", $0) }.joined(separator: " "))
            }
        }
    }

    /// Median tokens/s logged in the run folder's metrics.jsonl (the checkpoint's parent).
    private func trainingSpeed(_ checkpoint: URL) -> Double? {
        for dir in [checkpoint, checkpoint.deletingLastPathComponent()] {
            guard let text = try? String(contentsOf: dir.appendingPathComponent("metrics.jsonl"), encoding: .utf8) else { continue }
            let rates = text.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["tokens_per_sec"] as? Double
            }.sorted()
            if !rates.isEmpty { return rates[rates.count / 2] }
        }
        return nil
    }

    private func decodeSpeed(_ m: any LanguageModel, _ tokenizer: any Tokenizer) -> Double {
        let prompt = (0..<16).map { Int32($0 % m.config.vocabSize) }
        let generator = Generator(model: m, tokenizer: tokenizer)
        let options = GenerationOptions(maxTokens: 64, sampling: SamplingParameters(temperature: 0))
        _ = generator.generate(prompt: prompt, options: GenerationOptions(maxTokens: 4))
        let started = Date()
        let r = generator.generate(prompt: prompt, options: options)
        return Double(r.completionTokens) / Date().timeIntervalSince(started)
    }
}
