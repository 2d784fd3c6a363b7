import SLMTensor

/// Everything the rest of the code base knows about one architecture: its config
/// defaults and checks, its size, how to build it, and how (whether) it exports to
/// transformers (and reads from it), and which step the fast decoder takes. Each architecture's folder defines one; `Architectures.registered`
/// lists them, and nothing else switches on the architecture.
public struct ArchitectureDefinition: Sendable {
    public struct Defaults: Sendable {
        /// GPT-2's 4·width MLP; otherwise LLaMA's SwiGLU rounding (`ModelConfig.swigluWidth`).
        var ffnIsFourTimesWidth = false
        var normEps = 1e-6
        var bias = false
        var tiedEmbeddings = true

        static let llamaLike = Defaults()
    }

    public let name: ModelConfig.Architecture
    let defaults: Defaults
    /// Problems specific to this architecture (the shared ones are checked by ModelConfig).
    let validate: @Sendable (ModelConfig) -> [String]
    let parameterCount: @Sendable (ModelConfig) -> Int
    let flopsPerToken: @Sendable (ModelConfig) -> Double
    let build: @Sendable (ModelConfig, ParameterSource) -> any LanguageModel
    /// The fast batch-1 decoder's weights for a model this definition built (its
    /// incremental-decoding step); nil when only the general forward pass decodes it.
    let decodingWeights: (@Sendable (any LanguageModel, WeightPrecision) -> DecodingWeights?)?
    /// Whether `ModelConfig.experts` (a sparse mixture of experts) applies.
    var hasExperts = false
    /// Whether BitNet's `ModelConfig.quantization` and `subNorm` apply.
    var hasTernary = false
    /// config.json for transformers; nil when transformers has no class for it.
    public let huggingFaceConfig: (@Sendable (ModelConfig) throws -> [String: Any])?
    /// How llama.cpp runs it (GGUF export); nil when llama.cpp has no such architecture.
    public internal(set) var ggufLayout: (@Sendable (ModelConfig) throws -> GGUFLayout)? = nil
    /// How a folder saved by transformers reads as this architecture; nil when none does.
    var huggingFaceImport: HuggingFaceImport? = nil
}

public enum Architectures {
    /// The registry: adding an architecture is its folder plus one entry here.
    static let registered: [ArchitectureDefinition] = [GPT2.definition, Llama.definition, MonarchSLM.definition, SymbioSLM.definition]

    public static func named(_ name: String) -> ArchitectureDefinition? { registered.first { $0.name.rawValue == name } }
    public static var names: [String] { registered.map(\.name.rawValue) }
}

extension ModelConfig {
    /// Matmul FLOPs per token: 2 per weight of every linear map, the output head
    /// included once, whether or not it is tied.
    func linearFlops(nonEmbeddingMatmulParameters: Int) -> Double {
        2 * Double(nonEmbeddingMatmulParameters + vocabSize * width)
    }
}
