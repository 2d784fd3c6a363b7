import Foundation

/// The shape of a model, saved as config.json in every checkpoint (snake_case keys).
public struct ModelConfig: Codable, Sendable, Equatable {
    /// An architecture's name as config.json spells it; what it means is registered in
    /// `Architectures` (each architecture's folder declares its own name).
    public struct Architecture: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(rawValue)
        }
        public var description: String { rawValue }
        /// Its registered definition, if any.
        public var definition: ArchitectureDefinition? { Architectures.named(rawValue) }
    }

    public var architecture: Architecture
    public var vocabSize: Int
    public var layers: Int
    public var heads: Int
    /// Key/value heads (grouped-query attention); equal to `heads` for multi-head.
    public var kvHeads: Int
    public var width: Int
    public var context: Int
    /// Hidden width of the feed-forward block.
    public var ffnWidth: Int
    public var normEps: Double
    public var ropeTheta: Double
    /// Biases on projections (GPT-2: yes, LLaMA: no).
    public var bias: Bool
    /// The output head reuses the token embedding.
    public var tiedEmbeddings: Bool
    public var dropout: Double
    /// A sparse mixture of `experts` SwiGLU experts (each `ffnWidth` wide) in place of the
    /// feed-forward block, `expertsActive` of them per token; nil: a dense block. Absent
    /// from config.json when nil, so dense configs read and write as before.
    public var experts: Int?
    public var expertsActive: Int?
    /// BitNet b1.58: the blocks' linear maps are BitLinears (ternary weights, 8-bit
    /// activations) in the forward pass; nil: full precision. Absent from config.json when nil.
    public var quantization: Quantization?
    /// BitNet's SubLN: an extra RMSNorm before the attention output and the down
    /// projection (`attn_sub_norm`, `ffn_sub_norm`). Absent from config.json when false.
    public var subNorm: Bool?

    public enum Quantization: String, Codable, Sendable, CaseIterable {
        case ternary
    }

    enum CodingKeys: String, CodingKey {
        case architecture, layers, heads, width, context, bias, dropout, experts
        case vocabSize = "vocab_size", kvHeads = "kv_heads", ffnWidth = "ffn_width", normEps = "norm_eps"
        case ropeTheta = "rope_theta", tiedEmbeddings = "tied_embeddings", expertsActive = "experts_active"
        case quantization, subNorm = "sub_norm"
    }

    public init(architecture: Architecture, vocabSize: Int, layers: Int, heads: Int, kvHeads: Int? = nil,
                width: Int, context: Int, ffnWidth: Int? = nil, normEps: Double? = nil, ropeTheta: Double = 10_000,
                bias: Bool? = nil, tiedEmbeddings: Bool? = nil, dropout: Double = 0, experts: Int? = nil,
                expertsActive: Int? = nil, quantization: Quantization? = nil, subNorm: Bool? = nil) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.width = width
        self.context = context
        let defaults = architecture.definition?.defaults ?? .llamaLike
        self.ffnWidth = ffnWidth ?? (defaults.ffnIsFourTimesWidth ? 4 * width : ModelConfig.swigluWidth(width))
        self.normEps = normEps ?? defaults.normEps
        self.ropeTheta = ropeTheta
        self.bias = bias ?? defaults.bias
        self.tiedEmbeddings = tiedEmbeddings ?? defaults.tiedEmbeddings
        self.dropout = dropout
        self.experts = experts
        self.expertsActive = expertsActive
        self.quantization = quantization
        self.subNorm = subNorm == true ? true : nil
    }

    public var headSize: Int { width / heads }

    /// LLaMA's SwiGLU width: two thirds of 4·width, rounded up to a multiple of 64.
    public static func swigluWidth(_ width: Int) -> Int { (8 * width / 3 + 63) / 64 * 64 }

    /// Every reason this configuration cannot build a model.
    public func validate() throws(ConfigError) {
        guard let definition = architecture.definition else {
            throw ConfigError("unknown architecture \(architecture); known: \(Architectures.names.joined(separator: ", "))")
        }
        var problems: [String] = []
        if vocabSize < 2 { problems.append("vocab_size must be at least 2") }
        if layers < 1 { problems.append("layers must be at least 1") }
        if heads < 1 || width < 1 || width % max(heads, 1) != 0 { problems.append("width \(width) must be a positive multiple of heads \(heads)") }
        if kvHeads < 1 { problems.append("kv_heads must be at least 1") }
        if context < 1 { problems.append("context must be at least 1") }
        if ffnWidth < 1 { problems.append("ffn_width must be at least 1") }
        // Far beyond any model this CPU code trains, and small enough that sizes and
        // parameter counts cannot overflow.
        for (name, value, limit) in [("vocab_size", vocabSize, 1 << 24), ("layers", layers, 1024), ("width", width, 1 << 16),
                                     ("heads", heads, 1 << 12), ("context", context, 1 << 20), ("ffn_width", ffnWidth, 1 << 18),
                                     ("experts", experts ?? 0, 256)] where value > limit {
            problems.append("\(name) \(value) is above the supported \(limit)")
        }
        // The architecture's own checks divide by and take roots of these sizes: only
        // once every one of them is in range.
        if problems.isEmpty { problems += definition.validate(self) }
        if !(0..<1).contains(dropout) { problems.append("dropout must be in [0, 1)") }
        if !(normEps > 0) { problems.append("norm_eps must be positive") }
        if experts != nil || expertsActive != nil {
            if !definition.hasExperts {
                problems.append("\(architecture) has no mixture-of-experts option (experts, experts_active)")
            } else if let e = experts, let k = expertsActive {
                if e < 2 || k < 1 || k > e { problems.append("need experts >= 2 and 1 <= experts_active <= experts, not \(e) and \(k)") }
            } else {
                problems.append("experts and experts_active go together")
            }
        }
        if (quantization != nil || subNorm == true) && !definition.hasTernary {
            problems.append("\(architecture) has no BitNet option (quantization, sub_norm)")
        } else if (quantization != nil || subNorm == true) && experts != nil {
            problems.append("BitNet's ternary quantization and sub_norm do not apply to a mixture of experts")
        }
        if !problems.isEmpty { throw ConfigError(problems.joined(separator: "; ")) }
    }

    /// Parameters the model holds (tied embeddings counted once).
    public var parameterCount: Int { architecture.definition?.parameterCount(self) ?? 0 }

    /// Parameters one token uses: all but the SwiGLU experts it is not routed to.
    public var activeParameterCount: Int {
        parameterCount - layers * ((experts ?? 0) - (expertsActive ?? 0)) * 3 * width * ffnWidth
    }

    /// Forward FLOPs per token, for MFU: 2 per weight multiply (the output head included)
    /// plus the sequence mixer's own work over the whole context (an upper bound when causal).
    public var flopsPerToken: Double { architecture.definition?.flopsPerToken(self) ?? 0 }

    public static func read(from url: URL) throws -> ModelConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw ConfigError("\(url.path): not found") }
        return try decode(data, name: url.path)
    }

    /// A config.json's bytes → a validated config; `name` goes into error messages.
    public static func decode(_ data: Data, name: String) throws(ConfigError) -> ModelConfig {
        do {
            let config = try JSONDecoder().decode(ModelConfig.self, from: data)
            try config.validate()
            return config
        } catch let error as ConfigError {
            throw ConfigError("\(name): \(error.message)")
        } catch {
            throw ConfigError("\(name): not a model config (\(error))")
        }
    }

    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
