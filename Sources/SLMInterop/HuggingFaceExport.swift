import Foundation
import SLMModels

/// Writes a model directory that Hugging Face `transformers` opens with
/// `AutoModelForCausalLM.from_pretrained`: config.json in GPT2Config or LlamaConfig
/// schema, model.safetensors (our names and layouts already are theirs), and the
/// tokenizer's files.
public enum HuggingFaceExport {
    public static func export(from source: URL, to target: URL) throws {
        let config = try ModelConfig.read(from: source.appendingPathComponent("config.json"))
        let fm = FileManager.default
        let temp = target.deletingLastPathComponent()
            .appendingPathComponent(".\(target.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: temp)
        try fm.createDirectory(at: temp, withIntermediateDirectories: true)
        do {
            var hf = try huggingFaceConfig(config)
            // The end-of-text id, when the tokenizer has one (byte-level BPE); null otherwise,
            // rather than transformers' GPT-2 default of 50256.
            let endOfText = endOfTextID(source)
            hf["bos_token_id"] = endOfText ?? NSNull()
            hf["eos_token_id"] = endOfText ?? NSNull()
            let json = try JSONSerialization.data(withJSONObject: hf, options: [.prettyPrinted, .sortedKeys])
            try json.write(to: temp.appendingPathComponent("config.json"))
            // Re-read and re-write rather than copy: this validates the weights on the way.
            let (tensors, _) = try Safetensors.read(source.appendingPathComponent("model.safetensors"))
            let model = try makeModel(config, weights: tensors)
            try Safetensors.write(model.parameters, metadata: ["format": "pt"], to: temp.appendingPathComponent("model.safetensors"))
            for file in ["tokenizer.json", "vocab.json", "merges.txt"] where fm.fileExists(atPath: source.appendingPathComponent(file).path) {
                try fm.copyItem(at: source.appendingPathComponent(file), to: temp.appendingPathComponent(file))
            }
            if fm.fileExists(atPath: source.appendingPathComponent("tokenizer.json").path) {
                let tokenizerConfig: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>",
                                                      "bos_token": "<|endoftext|>", "model_max_length": config.context]
                try JSONSerialization.data(withJSONObject: tokenizerConfig, options: [.prettyPrinted, .sortedKeys])
                    .write(to: temp.appendingPathComponent("tokenizer_config.json"))
            }
            if fm.fileExists(atPath: target.path) { try fm.removeItem(at: target) }
            try fm.moveItem(at: temp, to: target)
        } catch {
            try? fm.removeItem(at: temp)
            throw error
        }
    }

    static func endOfTextID(_ source: URL) -> Int? {
        guard let data = FileManager.default.contents(atPath: source.appendingPathComponent("tokenizer.json").path),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let added = json["added_tokens"] as? [[String: Any]] else { return nil }
        return added.first { $0["content"] as? String == "<|endoftext|>" }?["id"] as? Int
    }

    /// The config.json `transformers` expects for this model.
    public static func huggingFaceConfig(_ c: ModelConfig) throws -> [String: Any] {
        guard let definition = c.architecture.definition else { throw ConfigError("unknown architecture \(c.architecture)") }
        guard let make = definition.huggingFaceConfig else {
            throw ConfigError("transformers has no model class for the \(c.architecture) architecture, so it cannot be exported "
                + "as a transformers folder (its checkpoint's model.safetensors and config.json are already the portable form)")
        }
        return try make(c)
    }
}
