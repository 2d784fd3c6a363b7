import Foundation
import SLMModels
import SLMSupport
import SLMTensor
import SLMText

/// A checkpoint or model folder as one GGUF file that llama.cpp (and what is built on it)
/// runs: the architecture's layout from its registry entry, the weights in the chosen
/// type (norms, biases and routers stay F32), and the tokenizer as llama.cpp's byte-level
/// BPE ("gpt2"): tokens, their types, merges, and explicit BOS/EOS ids.
public enum GGUFExport {
    public enum WeightType: String, CaseIterable, Sendable {
        /// tq2_0: ternary models only; their block matrices as TQ2_0, the rest as F32.
        case f32, f16, q8_0, tq2_0

        var tensorType: GGUFFile.TensorType {
            switch self {
            case .f32: .f32
            case .f16: .f16
            case .q8_0: .q8_0
            case .tq2_0: .tq2_0
            }
        }

        /// llama.cpp's `general.file_type` (ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_TQ2_0).
        var fileType: UInt32 {
            switch self {
            case .f32: 0
            case .f16: 1
            case .q8_0: 7
            case .tq2_0: 37
            }
        }
    }

    public struct Summary: Sendable {
        public var architecture: String
        public var tensorCount: Int
        public var byteCount: Int
        /// Matrices that could not take the requested type (Q8_0 needs rows of a multiple of
        /// 32 values) and went out as F32.
        public var keptFloat32: [String]
        /// Ternary matrices whose rows are not a multiple of 256 values (TQ2_0's block), so
        /// went out as Q8_0 (which holds {−s, 0, s} as exactly, up to its f16 scale).
        public var storedAsQ8_0: [String] = []
    }

    public static func export(from source: URL, to target: URL, type: WeightType) throws -> Summary {
        let config = try ModelConfig.read(from: source.appendingPathComponent("config.json"))
        guard let definition = config.architecture.definition else { throw ConfigError("unknown architecture \(config.architecture)") }
        guard let makeLayout = definition.ggufLayout else {
            throw ConfigError("llama.cpp has no architecture that runs \(config.architecture) models, so they cannot be exported "
                + "as GGUF (GGUF export covers llama models, their mixtures of experts included, and gpt2 models)")
        }
        let layout = try makeLayout(config)
        var (weights, _) = try Safetensors.read(source.appendingPathComponent("model.safetensors"))
        _ = try makeModel(config, weights: weights)  // validates names and shapes
        let ternary = config.quantization == .ternary
        if type == .tq2_0 && !ternary {
            throw ConfigError("--type tq2_0 stores ternary weights: only models trained ternary (training.quantization = \"ternary\") export as TQ2_0")
        }
        // A ternary model's block matrices go out as it computes with them: {−s, 0, s}.
        if ternary {
            for (name, w) in weights where isBlockMatrix(name) { weights[name] = ternaryWeights(w) }
        }
        let tokenizer = try loadTokenizer(source.path)
        if tokenizer is MetaspaceBPETokenizer {
            throw ConfigError("the model's tokenizer is Llama-2-style (\"▁\" for spaces, byte fallback), which llama.cpp reads as a "
                + "SentencePiece vocabulary with scores; this export writes byte-level BPE (\"gpt2\") and character vocabularies only")
        }
        guard tokenizer.vocabularySize <= config.vocabSize else {
            throw ConfigError("the tokenizer has \(tokenizer.vocabularySize) tokens but the model only \(config.vocabSize)")
        }

        var file = GGUFFile()
        file.metadata = [("general.architecture", .string(layout.architecture)),
                         ("general.name", .string(source.standardizedFileURL.lastPathComponent)),
                         ("general.file_type", .uint32(type.fileType)),
                         ("general.alignment", .uint32(UInt32(GGUFFile.alignment)))]
            + layout.metadata + vocabularyMetadata(tokenizer, vocabSize: config.vocabSize)
        var keptFloat32: [String] = [], storedAsQ8_0: [String] = []
        for t in layout.tensors {
            let (shape, values) = try gather(t, from: weights)
            var chosen: GGUFFile.TensorType = shape.count == 1 || t.keepsFloat32 ? .f32 : type.tensorType
            if chosen == .tq2_0 {
                // Only the blocks are ternary: the embedding and an untied head stay F32.
                if !t.sources.allSatisfy(isBlockMatrix) {
                    chosen = .f32
                } else if shape.last! % GGUFEncoding.tq2Block != 0 {
                    chosen = .q8_0
                    storedAsQ8_0.append(t.name)
                }
            }
            if chosen == .q8_0 && shape.last! % 32 != 0 {
                chosen = .f32
                keptFloat32.append(t.name)
            }
            let bytes = switch chosen {
            case .f32: GGUFEncoding.f32(values)
            case .f16: GGUFEncoding.f16(values)
            case .q8_0: GGUFEncoding.q8_0(values)
            case .tq2_0: GGUFEncoding.tq2_0(values)
            }
            file.tensors.append(.init(name: t.name, shape: shape, type: chosen, bytes: bytes))
        }
        let bytes = file.serialized()
        try AtomicFile.write(Data(bytes), to: target)
        return Summary(architecture: layout.architecture, tensorCount: file.tensors.count, byteCount: bytes.count,
                       keptFloat32: keptFloat32, storedAsQ8_0: storedAsQ8_0)
    }

    /// The linear maps inside a LLaMA block: what a ternary model computes as BitLinears.
    static func isBlockMatrix(_ name: String) -> Bool {
        name.hasPrefix("model.layers.") && name.hasSuffix("_proj.weight")
    }

    /// One GGUF tensor's shape and values: its sources stacked, rows reordered for RoPE.
    static func gather(_ t: GGUFLayout.Tensor, from weights: [String: Tensor]) throws -> (shape: [Int], values: [Float]) {
        let parts = try t.sources.map { name in
            guard let w = weights[name] else { throw ConfigError("model.safetensors has no \(name) (needed for \(t.name))") }
            return w
        }
        var shape = parts[0].shape.dims
        guard parts.allSatisfy({ $0.shape.dims == shape }) else { throw ConfigError("\(t.name): its sources differ in shape") }
        var values = parts.flatMap { $0.toArray() }
        if t.transposed {
            guard shape.count == 2, parts.count == 1 else { throw ConfigError("\(t.name): only a single matrix can be transposed") }
            let (rows, columns) = (shape[0], shape[1])
            var turned = values
            for r in 0..<rows {
                for c in 0..<columns { turned[c * rows + r] = values[r * columns + c] }
            }
            values = turned
            shape = [columns, rows]
        }
        if let headSize = t.rotaryHeadSize {
            let rows = shape[0], rowLength = values.count / rows
            let order = GGUFLayout.adjacentPairOrder(rows: rows, headSize: headSize)
            var permuted = values
            for (new, old) in order.enumerated() {
                permuted[(new * rowLength)..<((new + 1) * rowLength)] = values[(old * rowLength)..<((old + 1) * rowLength)]
            }
            values = permuted
        }
        if parts.count > 1 { shape.insert(parts.count, at: 0) }
        return (shape, values)
    }

    // llama.cpp's token types.
    static let normalToken: Int32 = 1, controlToken: Int32 = 3, unusedToken: Int32 = 5

    /// The tokenizer as llama.cpp's byte-level BPE. Token texts are in GPT-2's byte-to-
    /// character form (so llama.cpp turns them back into the right bytes); special tokens
    /// are control tokens under their own text; ids the tokenizer does not use (a model
    /// vocabulary larger than the tokenizer's) are unused "[PAD id]" tokens. A character
    /// tokenizer has no merges: llama.cpp then reads a prompt one byte at a time, which is
    /// exact for single-byte characters.
    static func vocabularyMetadata(_ tokenizer: any Tokenizer, vocabSize: Int) -> [(key: String, value: GGUFValue)] {
        let special = Dictionary(uniqueKeysWithValues: tokenizer.specialTokens.map { ($1, $0) })
        var tokens: [String] = [], types: [Int32] = []
        for id in 0..<Int32(vocabSize) {
            if let text = special[id] {
                tokens.append(text)
                types.append(controlToken)
            } else if let bytes = tokenizer.tokenBytes(id) {
                tokens.append(ByteLevel.string(of: bytes))
                types.append(normalToken)
            } else {
                tokens.append("[PAD\(id)]")
                types.append(unusedToken)
            }
        }
        var merges: [String] = []
        if let bpe = tokenizer as? ByteLevelBPETokenizer {
            merges = bpe.merges.map { bpe.tokens[Int($0.0)] + " " + bpe.tokens[Int($0.1)] }
        }
        var metadata: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("gpt-2")),
            ("tokenizer.ggml.tokens", .strings(tokens)),
            ("tokenizer.ggml.token_type", .int32s(types)),
            ("tokenizer.ggml.merges", .strings(merges)),
            // Our models read prompts as they are: no BOS or EOS is added.
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.ggml.add_eos_token", .bool(false)),
        ]
        // Without these, llama.cpp's "gpt2" defaults point BOS and EOS at a real token (11).
        if let end = tokenizer.specialTokens["<|endoftext|>"] {
            metadata += [("tokenizer.ggml.bos_token_id", .uint32(UInt32(end))),
                         ("tokenizer.ggml.eos_token_id", .uint32(UInt32(end)))]
        }
        return metadata
    }
}
