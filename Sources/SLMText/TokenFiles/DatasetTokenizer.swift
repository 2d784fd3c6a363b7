import Dispatch
import Foundation
import SLMSupport

/// meta.json: how a data directory's token files were made.
public struct DatasetMeta: Codable, Sendable, Equatable {
    public var tokenizer: String          // "char", "byte-bpe" or "metaspace-bpe"
    public var charset: String?           // for character tokenizers
    /// How the text was normalised (so prompts can be normalised the same way).
    public var lowercase: Bool?
    public var numeralsAsWords: Bool?
    public var vocabularySize: Int
    public var width: TokenWidth
    public var separator: Int32           // id placed between chunks
    public var trainTokens, validationTokens: Int
    public var trainCharacters, validationCharacters: Int
    /// The chunk index of train.bin (nil for data tokenized before it existed, or when the
    /// pipeline's train_enriched.jsonl is missing).
    public var chunks: ChunkIndex.Meta?

    enum CodingKeys: String, CodingKey {
        case tokenizer, charset, separator, lowercase, chunks
        case numeralsAsWords = "numerals_as_words"
        case vocabularySize = "vocab_size", width = "dtype"
        case trainTokens = "train_tokens", validationTokens = "val_tokens"
        case trainCharacters = "train_chars", validationCharacters = "val_chars"
    }

    public init(tokenizer: String, charset: String?, lowercase: Bool?, numeralsAsWords: Bool?, vocabularySize: Int,
                width: TokenWidth, separator: Int32, trainTokens: Int, validationTokens: Int, trainCharacters: Int,
                validationCharacters: Int) {
        self.tokenizer = tokenizer
        self.charset = charset
        self.lowercase = lowercase
        self.numeralsAsWords = numeralsAsWords
        self.vocabularySize = vocabularySize
        self.width = width
        self.separator = separator
        self.trainTokens = trainTokens
        self.validationTokens = validationTokens
        self.trainCharacters = trainCharacters
        self.validationCharacters = validationCharacters
    }

    public static func read(from directory: URL, file: String = "meta.json") throws -> DatasetMeta {
        let url = directory.appendingPathComponent(file)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PipelineError.notFound("\(url.path) (run `slm data tokenize` first)")
        }
        return try JSONDecoder().decode(DatasetMeta.self, from: data)
    }
}

/// `slm data tokenize`: train.txt and val.txt of a prepared directory → train.bin,
/// val.bin and meta.json, with the tokenizer's files copied beside them.
public enum DatasetTokenizer {
    /// `spec` is "char" (the charset the data was prepared with), "char:NAME", or a
    /// tokenizer directory. Also writes the chunk index of train.bin (`ChunkIndex`) from
    /// train_enriched.jsonl when the pipeline wrote one.
    public static func run(data: URL, tokenizer spec: String, threads: Int,
                           progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> DatasetMeta {
        let trainURL = data.appendingPathComponent("train.txt"), valURL = data.appendingPathComponent("val.txt")
        for url in [trainURL, valURL] where !FileManager.default.fileExists(atPath: url.path) {
            throw PipelineError.notFound("\(url.path) (run `slm data prepare` first)")
        }
        let tokenizer: any Tokenizer
        var charset: String? = nil
        let statsURL = data.appendingPathComponent("stats.json")
        let settings = FileManager.default.contents(atPath: statsURL.path)
            .flatMap { try? JSONDecoder().decode(DatasetStats.self, from: $0) }?.settings
        if spec == "char" {
            guard let settings else {
                throw PipelineError.notFound("\(statsURL.path), which names the charset (or pass --tokenizer char:NAME)")
            }
            let set = try Charset.named(settings.charset)
            tokenizer = CharTokenizer(charset: set)
            charset = set.name
        } else {
            tokenizer = try loadTokenizer(spec)
            if spec.hasPrefix("char:") { charset = String(spec.dropFirst(5)) }
        }
        let separator = separatorID(tokenizer)
        let width = TokenWidth(vocabularySize: tokenizer.vocabularySize)
        var counts: [(tokens: Int, characters: Int)] = []
        var index: ChunkIndex?
        for (name, url) in [("train", trainURL), ("val", valURL)] {
            let text = try String(contentsOf: url, encoding: .utf8)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
            let (ids, lengths) = encode(lines, with: tokenizer, separator: separator, threads: threads)
            try TokenFileWriter.write(ids, width: width, to: data.appendingPathComponent("\(name).bin"))
            counts.append((ids.count, lines.reduce(0) { $0 + $1.count + 1 }))
            progress("\(name): \(lines.count) chunks → \(ids.count) tokens")
            if name == "train" {
                let (built, problem) = ChunkIndex.build(enriched: data.appendingPathComponent("train_enriched.jsonl"), tokenCounts: lengths)
                index = built
                if let problem { progress("no chunk index (sampling by chunk will be unavailable): \(problem)") }
            }
        }
        let indexURL = data.appendingPathComponent(ChunkIndex.fileName)
        if let index {
            try index.write(to: indexURL)
            progress("chunk index: \(index.chunks.count) chunks of \(index.books.count) books in \(index.categories.count) categories")
        } else {
            try? FileManager.default.removeItem(at: indexURL)
        }
        try tokenizer.save(to: data)
        var meta = DatasetMeta(tokenizer: tokenizer.kind, charset: charset, lowercase: settings?.lowercase,
                               numeralsAsWords: settings?.numeralsAsWords, vocabularySize: tokenizer.vocabularySize,
                               width: width, separator: separator, trainTokens: counts[0].tokens,
                               validationTokens: counts[1].tokens, trainCharacters: counts[0].characters,
                               validationCharacters: counts[1].characters)
        meta.chunks = index?.meta
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(meta), to: data.appendingPathComponent("meta.json"))
        return meta
    }

    /// The id between chunks: the end-of-text token, else newline, else space.
    static func separatorID(_ tokenizer: any Tokenizer) -> Int32 {
        if let eot = tokenizer.endOfTextID { return eot }
        let newline = tokenizer.encode("\n"), space = tokenizer.encode(" ")
        return newline.count == 1 ? newline[0] : (space.first ?? 0)
    }

    /// Each chunk followed by the separator, encoded in parallel over contiguous ranges;
    /// also each chunk's token count (its separator included).
    static func encode(_ lines: [String], with tokenizer: any Tokenizer, separator: Int32,
                       threads: Int) -> (ids: [Int32], lengths: [Int]) {
        let parts = max(1, min(threads, lines.count))
        let results = ResultsBox<([Int32], [Int])>(count: parts)
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            var ids: [Int32] = [], lengths: [Int] = []
            for line in lines[(lines.count * p / parts)..<(lines.count * (p + 1) / parts)] {
                let before = ids.count
                ids += tokenizer.encode(line)
                ids.append(separator)
                lengths.append(ids.count - before)
            }
            results.set(p, (ids, lengths))
        }
        let pieces = (0..<parts).map { results.get($0)! }
        return (pieces.flatMap(\.0), pieces.flatMap(\.1))
    }
}
