import Foundation

/// The shape of a model, saved as config.json in every checkpoint (snake_case keys).
public struct ModelConfig: Codable, Sendable, Equatable {
    public enum Architecture: String, Codable, Sendable, CaseIterable {
        /// Learned positions, LayerNorm with bias, GELU MLP, fused QKV, separate head.
        case gpt2
        /// RMSNorm, RoPE, grouped-query attention, SwiGLU, no bias, tied embeddings.
        case llama
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

    enum CodingKeys: String, CodingKey {
        case architecture, layers, heads, width, context, bias, dropout
        case vocabSize = "vocab_size", kvHeads = "kv_heads", ffnWidth = "ffn_width", normEps = "norm_eps"
        case ropeTheta = "rope_theta", tiedEmbeddings = "tied_embeddings"
    }

    public init(architecture: Architecture, vocabSize: Int, layers: Int, heads: Int, kvHeads: Int? = nil,
                width: Int, context: Int, ffnWidth: Int? = nil, normEps: Double? = nil, ropeTheta: Double = 10_000,
                bias: Bool? = nil, tiedEmbeddings: Bool? = nil, dropout: Double = 0) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        self.width = width
        self.context = context
        self.ffnWidth = ffnWidth ?? (architecture == .gpt2 ? 4 * width : ModelConfig.swigluWidth(width))
        self.normEps = normEps ?? (architecture == .gpt2 ? 1e-5 : 1e-6)
        self.ropeTheta = ropeTheta
        self.bias = bias ?? (architecture == .gpt2)
        self.tiedEmbeddings = tiedEmbeddings ?? (architecture == .llama)
        self.dropout = dropout
    }

    public var headSize: Int { width / heads }

    /// LLaMA's SwiGLU width: two thirds of 4·width, rounded up to a multiple of 64.
    public static func swigluWidth(_ width: Int) -> Int { (8 * width / 3 + 63) / 64 * 64 }

    /// Every reason this configuration cannot build a model.
    public func validate() throws(ConfigError) {
        var problems: [String] = []
        if vocabSize < 2 { problems.append("vocab_size must be at least 2") }
        if layers < 1 { problems.append("layers must be at least 1") }
        if heads < 1 || width % max(heads, 1) != 0 { problems.append("width \(width) must be a positive multiple of heads \(heads)") }
        if kvHeads < 1 || heads % max(kvHeads, 1) != 0 { problems.append("heads \(heads) must be a multiple of kv_heads \(kvHeads)") }
        if architecture == .llama && headSize % 2 != 0 { problems.append("head size \(headSize) must be even for RoPE") }
        if architecture == .gpt2 && kvHeads != heads { problems.append("gpt2 uses one key/value head per head (kv_heads = heads)") }
        if context < 1 { problems.append("context must be at least 1") }
        if ffnWidth < 1 { problems.append("ffn_width must be at least 1") }
        if !(0..<1).contains(dropout) { problems.append("dropout must be in [0, 1)") }
        if normEps <= 0 { problems.append("norm_eps must be positive") }
        if !problems.isEmpty { throw ConfigError(problems.joined(separator: "; ")) }
    }

    /// Parameters the model holds (tied embeddings counted once).
    public var parameterCount: Int {
        let d = width, kv = kvHeads * headSize
        switch architecture {
        case .gpt2:
            let b = bias ? 1 : 0
            let block = 2 * 2 * d + (d * 3 * d + 3 * d * b) + (d * d + d * b) + (d * ffnWidth + ffnWidth * b) + (ffnWidth * d + d * b)
            return vocabSize * d + context * d + layers * block + 2 * d + (tiedEmbeddings ? 0 : vocabSize * d)
        case .llama:
            let block = 2 * d + d * d + 2 * d * kv + d * d + 3 * d * ffnWidth
            return vocabSize * d + layers * block + d + (tiedEmbeddings ? 0 : vocabSize * d)
        }
    }

    /// Forward FLOPs per token, for MFU: 2 per weight multiply plus attention's
    /// scores and weighted sums over the whole context (an upper bound when causal).
    public var flopsPerToken: Double {
        let nonEmbedding = Double(parameterCount - vocabSize * width - (architecture == .gpt2 ? context * width : 0))
        let head = Double(vocabSize * width)
        return 2 * (nonEmbedding + head) + 2 * 2 * Double(layers * context * width)
    }

    public static func read(from url: URL) throws -> ModelConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw ConfigError("\(url.path): not found") }
        do {
            let config = try JSONDecoder().decode(ModelConfig.self, from: data)
            try config.validate()
            return config
        } catch let error as ConfigError {
            throw ConfigError("\(url.path): \(error.message)")
        } catch {
            throw ConfigError("\(url.path): not a model config (\(error))")
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
