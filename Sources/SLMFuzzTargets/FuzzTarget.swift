import Foundation
import SLMModels
import SLMServer
import SLMText
import SLMTrain

/// The parsers that read outside input, each wrapped as a function of raw bytes for
/// `slm-fuzz` (libFuzzer or a replay of files) and for the regression tests.
///
/// Contract of every target: any input either parses or is refused with an error;
/// nothing traps, hangs or allocates without bound. Where a parse succeeds the target
/// also checks what the rest of the program relies on (ids in range, limits kept) and
/// traps if that fails, so that the fuzzer reports it as a finding.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case chatRequest = "chat-request"
    case completionRequest = "completion-request"
    case tokenizerJSON = "tokenizer-json"
    case safetensors
    case modelConfig = "model-config"
    case preset
    case tokenFiles = "token-files"

    public enum Outcome: Equatable, Sendable {
        case accepted
        case refused(String)
    }

    /// Runs one input. Refusals are normal outcomes; a broken invariant traps.
    public func run(_ bytes: [UInt8]) -> Outcome {
        do {
            switch self {
            case .chatRequest:
                check(try RequestParsing.chatCompletion(Data(bytes), modelName: "fuzz"))
            case .completionRequest:
                check(try RequestParsing.completion(Data(bytes), modelName: "fuzz"))
            case .tokenizerJSON:
                check(try readTokenizerJSON(bytes, path: "tokenizer.json"))
            case .safetensors:
                let (tensors, _) = try Safetensors.read(Data(bytes), name: "model.safetensors")
                require(tensors.values.allSatisfy { $0.count <= bytes.count }, "a tensor larger than its file")
            case .modelConfig:
                // Ours, or transformers' (it has a model_type).
                let data = Data(bytes)
                check(HuggingFaceFolder.isTransformersConfig(data)
                    ? try HuggingFaceFolder.config(data, name: "config.json") : try ModelConfig.decode(data, name: "config.json"))
            case .preset:
                let (model, _) = try Preset(name: "preset.toml", text: String(decoding: bytes, as: UTF8.self)).configs(vocabSize: 64)
                check(model)
            case .tokenFiles:
                try checkTokenFiles(bytes)
            }
            return .accepted
        } catch {
            return .refused(String(describing: error))
        }
    }

    private func check(_ r: RequestParsing.Accepted) {
        require((1...ServerLimits.maxChoices).contains(r.choices), "choices \(r.choices) outside the limit")
        require(r.maxTokens.allSatisfy { (1...ServerLimits.maxTokens).contains($0) }, "max_tokens outside the limit")
        require(r.topLogprobs.map { (0...ServerLimits.maxTopLogprobs).contains($0) } ?? true, "top_logprobs outside the limit")
    }

    private func check(_ tokenizer: any Tokenizer) {
        for text in ["Justice, said Socrates, is the interest of the stronger? 42 ὁ λόγος\n\t", "", " \u{0}\u{FFFD}"] {
            let ids = tokenizer.encode(text)
            require(ids.allSatisfy { (0..<Int32(clamping: tokenizer.vocabularySize)).contains($0) }, "encode gave an id outside the vocabulary")
            _ = try? tokenizer.decode(ids)
        }
    }

    private func check(_ config: ModelConfig) {
        require(config.parameterCount > 0, "a valid config with \(config.parameterCount) parameters")
        require(config.flopsPerToken.isFinite, "a valid config with non-finite FLOPs per token")
    }

    /// Input: a 2-byte little-endian length L, L bytes of meta.json, then train.bin.
    private func checkTokenFiles(_ bytes: [UInt8]) throws {
        let metaLength = bytes.count >= 2 ? Int(bytes[0]) | Int(bytes[1]) << 8 : 0
        let meta = Array(bytes.dropFirst(2).prefix(metaLength))
        let train = Array(bytes.dropFirst(2 + metaLength))
        let dir = FuzzScratch.directory
        try Data(meta).write(to: dir.appendingPathComponent("meta.json"))
        try Data(train).write(to: dir.appendingPathComponent("train.bin"))
        // A valid validation split: ids 0…3, as uint16 or uint32 to match meta.json's claim.
        let wide = meta.count > 0 && String(decoding: meta, as: UTF8.self).contains("uint32")
        let val: [UInt8] = (0..<24).flatMap { i -> [UInt8] in wide ? [UInt8(i % 4), 0, 0, 0] : [UInt8(i % 4), 0] }
        try Data(val).write(to: dir.appendingPathComponent("val.bin"))

        let data = try TrainingData(directory: dir)
        var sampler = try BatchSampler(file: data.train, batch: 2, context: min(4, data.train.count - 1), seed: 1)
        let (inputs, targets) = sampler.next()
        require((inputs + targets).allSatisfy { $0 >= 0 && Int($0) < data.meta.vocabularySize }, "a sampled id outside the vocabulary")
    }

    private func require(_ condition: Bool, _ what: @autoclosure () -> String) {
        if !condition { fatalError("fuzz target \(rawValue): \(what())") }
    }
}

/// One scratch folder per process for targets whose parser reads files.
private enum FuzzScratch {
    static let directory: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = URL(fileURLWithPath: base).appendingPathComponent("slm-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }()
}
