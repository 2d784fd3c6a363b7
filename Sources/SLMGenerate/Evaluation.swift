import Foundation
import SLMModels
import SLMTensor

/// How well a model predicts a stream of tokens.
public struct EvaluationReport: Codable, Sendable {
    public var tokens: Int
    public var loss: Double
    public var perplexity: Double
    /// Bits per byte of the text the tokens stand for: comparable across tokenizers.
    public var bitsPerByte: Double
    /// Bits per character, for character-level models.
    public var bitsPerCharacter: Double?
    public var tokensPerSecond: Double
    public var seconds: Double
    /// The model's per-layer figures (`LanguageModel.layerMetrics`), e.g. SymbioSLM's gate entropies.
    public var layers: [String: [Double]] = [:]

    enum CodingKeys: String, CodingKey {
        case tokens, loss, perplexity, seconds, layers
        case bitsPerByte = "bits_per_byte", bitsPerCharacter = "bits_per_char", tokensPerSecond = "tokens_per_sec"
    }
}

/// Diversity of generated text.
public struct DiversityReport: Codable, Sendable {
    public var characters: Int
    /// Distinct word n-grams over all word n-grams, n = 1, 2, 3.
    public var distinct1, distinct2, distinct3: Double
    /// Share of character 4-grams that already occurred earlier in the text.
    public var repetition4: Double

    enum CodingKeys: String, CodingKey {
        case characters
        case distinct1 = "distinct_1", distinct2 = "distinct_2", distinct3 = "distinct_3", repetition4 = "repetition_4"
    }
}

public enum Evaluation {
    /// Mean next-token loss over consecutive, non-overlapping windows of the model's
    /// context (each window predicts every one of its positions), up to `maxTokens`.
    /// `bytes` is the number of text bytes the evaluated tokens stand for.
    public static func evaluate(_ model: any LanguageModel, tokens: [Int32], bytesPerToken: Double, characterLevel: Bool,
                                batch: Int = 8, maxTokens: Int? = nil) -> EvaluationReport {
        let context = model.config.context
        let usable = min(tokens.count - 1, maxTokens ?? Int.max)
        let windows = max(0, usable / context)
        let started = Date()
        var totalLoss = 0.0, counted = 0
        var w = 0
        while w < windows {
            let n = min(batch, windows - w)
            var inputs: [Int32] = [], targets: [Int32] = []
            for i in 0..<n {
                let start = (w + i) * context
                inputs += tokens[start..<(start + context)]
                targets += tokens[(start + 1)...(start + context)]
            }
            let loss = Autograd.noGrad { model.loss(inputs: inputs, targets: targets, batch: n, time: context) }.item()
            totalLoss += Double(loss) * Double(n * context)
            counted += n * context
            w += n
        }
        let seconds = Date().timeIntervalSince(started)
        let loss = counted > 0 ? totalLoss / Double(counted) : .nan
        let bits = loss / log(2)
        return EvaluationReport(tokens: counted, loss: loss, perplexity: exp(loss), bitsPerByte: bits / bytesPerToken,
                                bitsPerCharacter: characterLevel ? bits : nil,
                                tokensPerSecond: Double(counted) / max(seconds, 1e-9), seconds: seconds,
                                layers: model.layerMetrics)
    }

    public static func diversity(_ text: String) -> DiversityReport {
        let words = text.split { $0.isWhitespace }.map(String.init)
        func distinct(_ n: Int) -> Double {
            guard words.count >= n else { return 0 }
            let grams = (0...(words.count - n)).map { words[$0..<($0 + n)].joined(separator: " ") }
            return Double(Set(grams).count) / Double(grams.count)
        }
        let chars = Array(text)
        var seen = Set<String>(), repeated = 0, total = 0
        if chars.count >= 4 {
            for i in 0...(chars.count - 4) {
                let gram = String(chars[i..<(i + 4)])
                if !seen.insert(gram).inserted { repeated += 1 }
                total += 1
            }
        }
        return DiversityReport(characters: chars.count, distinct1: distinct(1), distinct2: distinct(2), distinct3: distinct(3),
                               repetition4: total > 0 ? Double(repeated) / Double(total) : 0)
    }
}
