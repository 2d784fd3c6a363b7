import Foundation
import SLMSupport
import SLMTensor

/// A model on disk: config.json and model.safetensors in one directory (plus, in
/// checkpoints, the tokenizer's and the trainer's files).
public enum ModelStore {
    public static func save(_ model: any LanguageModel, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicFile.write(try model.config.jsonData(), to: directory.appendingPathComponent("config.json"))
        try Safetensors.write(model.parameters, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
    }

    public static func load(from directory: URL) throws -> any LanguageModel {
        let config = try ModelConfig.read(from: directory.appendingPathComponent("config.json"))
        let (tensors, _) = try Safetensors.read(directory.appendingPathComponent("model.safetensors"))
        do {
            return try makeModel(config, weights: tensors)
        } catch let error as ConfigError {
            throw ConfigError("\(directory.path): \(error.message)")
        }
    }
}
