import Foundation
import SLMModels

/// A preset: a TOML file with a [model] and a [training] section (see presets/).
/// Command-line overrides (`model.layers=4`, `training.steps=200`) patch the table
/// before it is read, so any value can be overridden the same way.
public struct Preset: Sendable {
    public var name: String
    public var table: TOMLTable

    public init(name: String, text: String) throws(TOMLError) {
        self.name = name
        table = try TOML.parse(text, name: name)
        for section in table.keys where section != "model" && section != "training" && section != "" {
            throw TOMLError("\(name): unknown section [\(section)] (use [model] and [training])")
        }
    }

    /// Finds presets/NAME.toml in the working directory or beside the executable's
    /// checkout, or reads NAME as a path when it names a file.
    public static func load(_ nameOrPath: String, executable: URL? = nil) throws -> Preset {
        let fm = FileManager.default
        if nameOrPath.hasSuffix(".toml") || nameOrPath.contains("/") {
            guard let text = try? String(contentsOfFile: nameOrPath, encoding: .utf8) else {
                throw TOMLError("\(nameOrPath): cannot be read")
            }
            return try Preset(name: nameOrPath, text: text)
        }
        var candidates = [URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent("presets")]
        if var dir = executable?.deletingLastPathComponent() {
            for _ in 0..<5 {
                candidates.append(dir.appendingPathComponent("presets"))
                dir.deleteLastPathComponent()
            }
        }
        for dir in candidates {
            let file = dir.appendingPathComponent("\(nameOrPath).toml")
            if let text = try? String(contentsOf: file, encoding: .utf8) { return try Preset(name: file.path, text: text) }
        }
        let known = candidates.compactMap { try? fm.contentsOfDirectory(atPath: $0.path) }.first?
            .filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted() ?? []
        throw TOMLError("no preset '\(nameOrPath)' (looked in \(candidates.map(\.path).joined(separator: ", ")))"
            + (known.isEmpty ? "" : "; known presets: \(known.joined(separator: ", "))"))
    }

    /// Applies `section.key=value` overrides.
    public mutating func override(_ assignments: [String]) throws(TOMLError) {
        for a in assignments {
            guard let eq = a.firstIndex(of: "="), let dot = a[..<eq].firstIndex(of: ".") else {
                throw TOMLError("override \(a) must look like model.layers=4 or training.steps=200")
            }
            let section = String(a[..<dot]), key = String(a[a.index(after: dot)..<eq])
            guard section == "model" || section == "training" else { throw TOMLError("override \(a): section must be model or training") }
            table[section, default: [:]][key] = TOMLValue.parseLoose(String(a[a.index(after: eq)...]))
        }
    }

    /// The nanochat-style single dial: `depth` layers of width 64·depth with 64-wide
    /// heads, and a token budget of 20 tokens per parameter (the Chinchilla ratio),
    /// turned into steps for the preset's batch and context.
    public mutating func applyDepth(_ depth: Int, vocabSize: Int) throws {
        guard depth >= 1 else { throw TOMLError("--depth must be at least 1") }
        table["model", default: [:]]["layers"] = .integer(depth)
        table["model", default: [:]]["width"] = .integer(64 * depth)
        table["model", default: [:]]["heads"] = .integer(depth)
        table["model", default: [:]]["kv_heads"] = .integer(depth)
        table["model", default: [:]]["ffn_width"] = nil
        let (model, training) = try configs(vocabSize: vocabSize)
        let tokensPerStep = training.batch * training.accumulation * model.context
        table["training", default: [:]]["steps"] = .integer(max(1, 20 * model.parameterCount / tokensPerStep))
    }

    /// The [training] section alone (fine-tuning takes the model from elsewhere).
    public func trainingConfig() throws -> TrainingConfig {
        let training = try TrainingConfig(section: table["training"] ?? [:])
        try training.validate()
        return training
    }

    public func configs(vocabSize: Int) throws -> (ModelConfig, TrainingConfig) {
        var model = try ModelConfig(section: table["model"] ?? [:], vocabSize: vocabSize)
        let training = try TrainingConfig(section: table["training"] ?? [:])
        // Ternary training trains (and makes) a ternary model.
        if let q = training.quantization { model.quantization = q }
        try model.validate()
        try training.validate()
        return (model, training)
    }
}
