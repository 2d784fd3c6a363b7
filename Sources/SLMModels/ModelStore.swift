import Foundation
import SLMSupport
import SLMTensor

/// A model on disk: config.json and model.safetensors in one directory (plus, in
/// checkpoints, the tokenizer's and the trainer's files), or a transformers folder.
public enum ModelStore {
    public static func save(_ model: any LanguageModel, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicFile.write(try model.config.jsonData(), to: directory.appendingPathComponent("config.json"))
        try Safetensors.write(model.parameters, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
    }

    /// Also reads a folder saved by transformers (`HuggingFaceFolder`).
    public static func load(from directory: URL) throws -> any LanguageModel {
        let url = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { throw ConfigError("\(url.path): not found") }
        let config: ModelConfig, tensors: [String: Tensor]
        if HuggingFaceFolder.isTransformersConfig(data) {
            config = try HuggingFaceFolder.config(data, name: url.path)
            tensors = try HuggingFaceFolder.weights(in: directory, for: config)
        } else {
            config = try ModelConfig.decode(data, name: url.path)
            tensors = try Safetensors.read(directory.appendingPathComponent("model.safetensors")).tensors
        }
        do {
            return try makeModel(config, weights: tensors)
        } catch let error as ConfigError {
            throw ConfigError("\(directory.path): \(error.message)")
        }
    }
}
