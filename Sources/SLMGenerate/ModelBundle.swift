import Foundation
import SLMModels
import SLMTensor
import SLMText

/// A model directory ready to use: weights, tokenizer, and, for character models, the
/// normalisation its training text went through.
public struct ModelBundle {
    public let directory: URL
    public let model: any LanguageModel
    public let tokenizer: any Tokenizer
    /// For character models: prompts are normalised like the training text was.
    public let normalizer: TextNormalizer?

    public var name: String { directory.standardizedFileURL.lastPathComponent }

    public init(directory: URL) throws {
        self.directory = directory
        model = try ModelStore.load(from: directory)
        tokenizer = try loadTokenizer(directory.path)
        guard tokenizer.vocabularySize <= model.config.vocabSize else {
            throw ConfigError("\(directory.path): the tokenizer has \(tokenizer.vocabularySize) ids, the model \(model.config.vocabSize)")
        }
        let meta = try? DatasetMeta.read(from: directory, file: "data_meta.json")
        if let char = tokenizer as? CharTokenizer {
            let charset = meta?.charset.flatMap { try? Charset.named($0) }
                ?? Charset.all.first { $0.characters == char.characters }
            normalizer = charset.map {
                TextNormalizer(.init(charset: $0, lowercase: meta?.lowercase ?? false, numeralsAsWords: meta?.numeralsAsWords ?? false))
            }
        } else {
            normalizer = nil
        }
    }

    /// Prompt ids. Character models see the prompt normalised as their training text was;
    /// characters they cannot represent are dropped and counted, not fatal.
    public func encodePrompt(_ text: String) -> (ids: [Int32], dropped: [String: Int]) {
        guard let normalizer else { return (tokenizer.promptPrefix + tokenizer.encode(text), [:]) }
        var drops = DropCounts()
        var normalized = normalizer.normalize(text, drops: &drops)
        // Normalising trims trailing space, but a prompt's last space says "next word".
        if text.last?.isWhitespace == true, !normalized.isEmpty, normalizer.options.charset.contains(" ") { normalized += " " }
        return (tokenizer.encode(normalized), drops.outsideCharset)
    }
}
