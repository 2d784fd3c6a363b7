import Foundation
import SLMTensor

/// A folder saved by transformers' `save_pretrained`: config.json in Hugging Face's
/// schema (it has a `model_type`), and model.safetensors or shards listed by
/// model.safetensors.index.json, in F32, F16 or BF16 (widened to float32 on load).
/// Each architecture that transformers also has says how its config reads
/// (`ArchitectureDefinition.huggingFaceImport`); everything else here is shared.
public enum HuggingFaceFolder {
    /// Whether a config.json's bytes are transformers' rather than ours.
    public static func isTransformersConfig(_ data: Data) -> Bool {
        (try? HuggingFaceConfig(data, name: ""))?.fields["model_type"] != nil
    }

    /// Our config for a transformers config.json; fields we cannot honour are refused by name.
    public static func config(_ data: Data, name: String) throws(ConfigError) -> ModelConfig {
        let fields = try HuggingFaceConfig(data, name: name)
        let modelType = try fields.string("model_type")
        guard let definition = Architectures.registered.first(where: { $0.huggingFaceImport?.modelType == modelType }),
              let reader = definition.huggingFaceImport else {
            let known = Architectures.registered.compactMap { $0.huggingFaceImport?.modelType }
            throw ConfigError("\(name): model_type \(modelType) is not one swift-slm runs (it reads \(known.joined(separator: ", ")))")
        }
        let classes = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["architectures"] as? [String]
        if let first = classes?.first, first != reader.causalLMClass {
            throw ConfigError("\(name): \(first) is not a causal language model of the kind swift-slm runs (\(reader.causalLMClass))")
        }
        let config = try reader.config(fields)
        do { try config.validate() } catch { throw ConfigError("\(name): \(error.message)") }
        return config
    }

    /// Every tensor of the folder under our names (shards merged; buffers transformers
    /// also stores, such as attention masks, left out).
    public static func weights(in directory: URL, for config: ModelConfig) throws -> [String: Tensor] {
        let fm = FileManager.default
        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        var stored: [String: Tensor] = [:]
        if fm.fileExists(atPath: single.path) {
            stored = try Safetensors.read(single).tensors
        } else if let data = fm.contents(atPath: index.path) {
            guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  let map = json["weight_map"] as? [String: String] else {
                throw ConfigError("\(index.path): not a safetensors index (no weight_map)")
            }
            for shard in Set(map.values).sorted() {
                guard !shard.contains("/"), shard != ".." else { throw ConfigError("\(index.path): shard \(shard) is not a file in the folder") }
                for (key, tensor) in try Safetensors.read(directory.appendingPathComponent(shard)).tensors {
                    guard map[key] == shard else { throw ConfigError("\(shard): tensor \(key) is not listed for this shard in \(index.lastPathComponent)") }
                    stored[key] = tensor
                }
            }
            if let missing = map.keys.sorted().first(where: { stored[$0] == nil }) {
                throw ConfigError("\(index.path): tensor \(missing) is listed for \(map[missing]!) but not in it")
            }
        } else if fm.fileExists(atPath: directory.appendingPathComponent("pytorch_model.bin").path) {
            throw ConfigError("\(directory.path): only pytorch_model.bin (a pickle, which swift-slm does not execute); "
                + "save it with `save_pretrained(..., safe_serialization=True)` to get model.safetensors")
        } else {
            throw ConfigError("\(directory.path): no model.safetensors or model.safetensors.index.json")
        }
        guard let reader = config.architecture.definition?.huggingFaceImport else { return stored }
        var weights: [String: Tensor] = [:]
        for (key, tensor) in stored {
            guard let name = reader.tensorName(key, config) else { continue }
            guard weights[name] == nil else { throw ConfigError("\(directory.path): two tensors are named \(name) once read") }
            weights[name] = tensor
        }
        return weights
    }
}

/// How one architecture reads a transformers folder.
public struct HuggingFaceImport: Sendable {
    /// config.json's `model_type`.
    let modelType: String
    /// The class in `architectures` whose weights this architecture's are.
    let causalLMClass: String
    let config: @Sendable (HuggingFaceConfig) throws(ConfigError) -> ModelConfig
    /// Our name for a stored tensor; nil for a buffer to leave out.
    let tensorName: @Sendable (String, ModelConfig) -> String?
}

/// Typed reads of a transformers config.json, with errors that name the field.
public struct HuggingFaceConfig {
    /// A config.json value as far as we read it.
    enum Value: Decodable {
        case bool(Bool), number(Double), string(String), null, object([String: Value]), other

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() { self = .null }
            else if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else if let o = try? c.decode([String: Value].self) { self = .object(o) }
            else { self = .other }
        }
    }

    let fields: [String: Value]
    let name: String

    init(_ data: Data, name: String) throws(ConfigError) {
        do { fields = try JSONDecoder().decode([String: Value].self, from: data) } catch {
            throw ConfigError("\(name): not a JSON object")
        }
        self.name = name
    }

    private init(fields: [String: Value], name: String) {
        self.fields = fields
        self.name = name
    }

    /// A nested object's fields (transformers 5 keeps RoPE's in `rope_parameters`), nil when absent or null.
    func object(_ key: String) throws(ConfigError) -> HuggingFaceConfig? {
        switch value(key) {
        case .object(let o)?: return HuggingFaceConfig(fields: o, name: "\(name): \(key)")
        case nil: return nil
        default: throw fail("\(key) is not an object")
        }
    }

    private func value(_ key: String) -> Value? {
        if case .null? = fields[key] { return nil }
        return fields[key]
    }

    func fail(_ why: String) -> ConfigError { ConfigError("\(name): \(why)") }

    func int(_ key: String, default fallback: Int? = nil) throws(ConfigError) -> Int {
        switch value(key) {
        case .number(let n)? where n == n.rounded() && abs(n) < 1e15: return Int(n)
        case nil:
            if let fallback { return fallback }
            throw fail("\(key) is missing")
        default: throw fail("\(key) is not an integer")
        }
    }

    func double(_ key: String, default fallback: Double) throws(ConfigError) -> Double {
        switch value(key) {
        case .number(let n)?: return n
        case nil: return fallback
        default: throw fail("\(key) is not a number")
        }
    }

    func bool(_ key: String, default fallback: Bool) throws(ConfigError) -> Bool {
        switch value(key) {
        case .bool(let b)?: return b
        case nil: return fallback
        default: throw fail("\(key) is not true or false")
        }
    }

    func string(_ key: String, default fallback: String? = nil) throws(ConfigError) -> String {
        switch value(key) {
        case .string(let s)?: return s
        case nil:
            if let fallback { return fallback }
            throw fail("\(key) is missing")
        default: throw fail("\(key) is not a string")
        }
    }

    /// Refuses a field that is set (present and not null) and not one of the values we run.
    func refuse(_ key: String, unless allowed: (Value) -> Bool = { _ in false }, because why: String) throws(ConfigError) {
        if let v = value(key), !allowed(v) { throw fail("\(key) is set, which is not supported: \(why)") }
    }
}
