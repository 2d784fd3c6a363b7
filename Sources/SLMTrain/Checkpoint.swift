import Foundation
import SLMModels
import SLMTensor
import SLMSupport
import SLMText

public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// trainer_state.json: everything besides weights and moments that an exact resume needs.
public struct TrainerState: Codable, Sendable, Equatable {
    public var step: Int
    public var tokensSeen: Int
    public var elapsedSeconds: Double
    public var bestValidationLoss: Double?
    public var samplerState: UInt64
    public var dropoutRNG: [UInt64]
    public var dataFingerprint: String
    /// A hash of the token files' contents; absent from checkpoints written before it
    /// existed (those resume on the fingerprint of meta.json and the token counts).
    public var dataHash: String?
    public var configFingerprint: String
    public var training: TrainingConfig
    /// Online DoReMi's category weights α (nil when it is off).
    public var domainWeights: [Double]? = nil

    enum CodingKeys: String, CodingKey {
        case step, training
        case tokensSeen = "tokens_seen", elapsedSeconds = "elapsed_seconds", bestValidationLoss = "best_val_loss"
        case samplerState = "sampler_state", dropoutRNG = "dropout_rng", dataFingerprint = "data_fingerprint"
        case configFingerprint = "config_fingerprint", dataHash = "data_hash", domainWeights = "domain_weights"
    }
}

/// A checkpoint directory: config.json, model.safetensors, optimizer.safetensors,
/// trainer_state.json, the tokenizer's files, and ema.safetensors when EMA is on.
/// Written into a hidden temporary directory and renamed into place, so a crash never
/// leaves a directory that looks like a checkpoint but is not one.
public enum Checkpoint {
    public static let tokenizerFiles = ["vocab.json", "merges.txt", "tokenizer.json"]

    public static func write(to target: URL, model: any LanguageModel, optimizer: AdamW, state: TrainerState,
                             ema: [(name: String, tensor: Tensor)]?, tokenizerFrom data: URL) throws {
        let fm = FileManager.default
        let parent = target.deletingLastPathComponent()
        let temp = parent.appendingPathComponent(".\(target.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
        try? fm.removeItem(at: temp)
        try fm.createDirectory(at: temp, withIntermediateDirectories: true)
        do {
            try ModelStore.save(model, to: temp)
            try Safetensors.write(optimizer.state(names: model.parameters.map(\.name)), to: temp.appendingPathComponent("optimizer.safetensors"))
            if let ema { try Safetensors.write(ema, metadata: ["format": "pt"], to: temp.appendingPathComponent("ema.safetensors")) }
            for file in tokenizerFiles + ["meta.json"] {
                let source = data.appendingPathComponent(file)
                if fm.fileExists(atPath: source.path) {
                    try fm.copyItem(at: source, to: temp.appendingPathComponent(file == "meta.json" ? "data_meta.json" : file))
                }
            }
            // trainer_state.json last: its presence marks the directory complete.
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(state).write(to: temp.appendingPathComponent("trainer_state.json"))
            try publish(temp, as: target)
        } catch {
            try? fm.removeItem(at: temp)
            throw error
        }
    }

    /// Makes the directory `temp` durable (every file, then its entries) and renames it
    /// to `target` (see `replaceDirectory`).
    static func publish(_ temp: URL, as target: URL) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: temp.path).sorted() {
            try FileSync.current.syncFile(temp.appendingPathComponent(name))
        }
        try FileSync.current.syncDirectory(temp)
        try replaceDirectory(target, with: temp)
    }

    /// Renames `temp` (synced) to `target` and syncs the parent, so the new directory is
    /// durable before anything older is removed; an existing `target` is moved aside
    /// first and removed after.
    static func replaceDirectory(_ target: URL, with temp: URL) throws {
        let fm = FileManager.default, sync = FileSync.current, parent = target.deletingLastPathComponent()
        var old: URL? = nil
        if fm.fileExists(atPath: target.path) {
            let aside = parent.appendingPathComponent(".\(target.lastPathComponent).old-\(ProcessInfo.processInfo.processIdentifier)")
            try? fm.removeItem(at: aside)
            try sync.rename(target, aside)
            old = aside
        }
        do {
            try sync.rename(temp, target)
        } catch {
            if let old { try? sync.rename(old, target) }
            throw CheckpointError("could not rename \(temp.path) to \(target.path)")
        }
        try sync.syncDirectory(parent)
        if let old { try? fm.removeItem(at: old) }
    }

    /// A checkpoint directory, or the newest `ckpt-*` inside a run directory.
    public static func resolve(_ path: String) throws -> URL {
        let url = URL(fileURLWithPath: path)
        let fm = FileManager.default
        if fm.fileExists(atPath: url.appendingPathComponent("trainer_state.json").path) { return url }
        if let newest = steps(in: url).last { return newest.url }
        if fm.fileExists(atPath: url.appendingPathComponent("config.json").path) {
            throw CheckpointError("\(path) has no trainer_state.json: it is not a complete checkpoint (torn or a model export)")
        }
        throw CheckpointError("\(path) holds no checkpoint (expected trainer_state.json, or ckpt-* directories)")
    }

    /// The ckpt-NNNNNN directories of a run, oldest first.
    public static func steps(in run: URL) -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: run.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("ckpt-"), let step = Int(name.dropFirst(5)) else { return nil }
            let url = run.appendingPathComponent(name)
            return FileManager.default.fileExists(atPath: url.appendingPathComponent("trainer_state.json").path) ? (step, url) : nil
        }.sorted { $0.0 < $1.0 }
    }

    public static func readState(_ dir: URL) throws -> TrainerState {
        let url = dir.appendingPathComponent("trainer_state.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointError("\(dir.path): trainer_state.json is missing (torn checkpoint?)")
        }
        do {
            return try JSONDecoder().decode(TrainerState.self, from: data)
        } catch {
            throw CheckpointError("\(url.path): unreadable (\(error))")
        }
    }
}

/// A 64-bit hash of files' contents, 8 bytes at a time (FNV-1a over words), as hex: the
/// token files are hashed whole when training starts, so it must be fast.
public func contentHash(_ files: [URL]) throws -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for file in files {
        let data = try Data(contentsOf: file, options: .alwaysMapped)
        data.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words { h = (h ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x100_0000_01B3 }
            for i in (words * 8)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x100_0000_01B3 }
        }
        h = (h ^ UInt64(data.count)) &* 0x100_0000_01B3
    }
    return String(h, radix: 16)
}

/// FNV-1a 64 over byte strings, as hex: stable fingerprints for data and configs.
public func fingerprint(_ parts: [Data]) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for part in parts {
        for b in part { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        h = (h ^ 0xFF) &* 0x100_0000_01B3
    }
    return String(h, radix: 16)
}
