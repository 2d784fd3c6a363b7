/// A metadata value of a GGUF file (the subset of GGUF's types this project writes).
public enum GGUFValue: Sendable, Equatable {
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case strings([String])
    case int32s([Int32])
}

/// How one architecture's checkpoint becomes a llama.cpp model: the architecture name
/// llama.cpp knows it by, its hyper-parameters as metadata, and where each GGUF tensor
/// comes from. Each architecture that llama.cpp can run provides one through its
/// registry entry (`ArchitectureDefinition.ggufLayout`); the file format itself and the
/// tokenizer's metadata are the exporter's.
public struct GGUFLayout: Sendable {
    /// llama.cpp's name: "llama", "gpt2", …
    public var architecture: String
    /// Architecture keys, already prefixed ("llama.context_length").
    public var metadata: [(key: String, value: GGUFValue)]
    public var tensors: [Tensor]

    public struct Tensor: Sendable {
        /// The GGUF name ("blk.0.attn_q.weight").
        public var name: String
        /// Checkpoint tensors; several are stacked along a new outermost axis (the experts
        /// of a mixture), in order.
        public var sources: [String]
        /// Rows to reorder from rotate-half pairs (i with i + D/2, Hugging Face's Llama and
        /// ours) to adjacent pairs (2i with 2i + 1, llama.cpp's "llama"), in heads of this
        /// many rows; nil leaves the rows as they are.
        public var rotaryHeadSize: Int?
        /// Stays F32 whatever type the export asks for (as llama.cpp's own converter keeps
        /// a mixture's router: quantising it would change which experts a token reaches).
        public var keepsFloat32: Bool
        /// A matrix stored [inputs, outputs] (GPT-2's Conv1D) that GGUF wants as
        /// [outputs, inputs].
        public var transposed: Bool

        public init(_ name: String, from sources: [String], rotaryHeadSize: Int? = nil, keepsFloat32: Bool = false,
                    transposed: Bool = false) {
            self.name = name
            self.sources = sources
            self.rotaryHeadSize = rotaryHeadSize
            self.keepsFloat32 = keepsFloat32
            self.transposed = transposed
        }

        public init(_ name: String, from source: String, rotaryHeadSize: Int? = nil, keepsFloat32: Bool = false,
                    transposed: Bool = false) {
            self.init(name, from: [source], rotaryHeadSize: rotaryHeadSize, keepsFloat32: keepsFloat32, transposed: transposed)
        }
    }
}

extension GGUFLayout {
    /// The row order that turns rotate-half pairs into adjacent pairs for `rows` rows in
    /// heads of `headSize`: new row h·D + 2i + j is old row h·D + j·D/2 + i.
    public static func adjacentPairOrder(rows: Int, headSize: Int) -> [Int] {
        precondition(headSize % 2 == 0 && rows % headSize == 0, "rows \(rows) in heads of \(headSize)")
        let half = headSize / 2
        return (0..<rows).map { r in
            let head = r / headSize, k = r % headSize
            return head * headSize + (k % 2) * half + k / 2
        }
    }
}
