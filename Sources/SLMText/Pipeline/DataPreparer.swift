import Dispatch
import Foundation
import SLMSupport

/// Everything `slm data prepare` can be told.
public struct PrepareOptions: Sendable {
    public var normalization: NormalizationOptions
    public var chunker = Chunker()
    /// Share of chunks (or of books, with `splitByBook`) that go to validation.
    public var validationFraction = 0.1
    /// Keep every book whole on one side of the split, so validation text is unseen.
    public var splitByBook = false
    public var seed: UInt64 = 1337
    public var invalidUTF8 = InvalidUTF8Policy.error
    /// Books processed at once.
    public var threads = 1

    public init(normalization: NormalizationOptions) { self.normalization = normalization }

    public func validate() throws {
        guard chunker.minLength >= 1, chunker.maxLength >= chunker.minLength else {
            throw PipelineError.invalidOption("chunk lengths need 1 <= min (\(chunker.minLength)) <= max (\(chunker.maxLength))")
        }
        guard validationFraction >= 0, validationFraction < 1 else {
            throw PipelineError.invalidOption("--val-fraction must be in [0, 1), got \(validationFraction)")
        }
    }
}

/// Per-book figures for stats.json.
public struct BookStats: Codable, Sendable {
    public var file, author, title, category, phase, format: String
    public var charactersIn = 0          // characters of the raw file
    public var charactersBody = 0        // after removing boilerplate and markup
    public var charactersOut = 0         // in kept chunks
    public var chunks = 0, trainChunks = 0, validationChunks = 0
    public var dropped = DropCounts()
    public var shortPieceCharacters = 0  // in pieces below the minimum chunk length
    public var invalidUTF8Replaced = 0

    enum CodingKeys: String, CodingKey {
        case file, author, title, category, phase, format, chunks, dropped
        case charactersIn = "chars_in", charactersBody = "chars_body", charactersOut = "chars_out"
        case trainChunks = "train_chunks", validationChunks = "val_chunks"
        case shortPieceCharacters = "short_piece_chars", invalidUTF8Replaced = "invalid_utf8_replaced"
    }
}

public struct DatasetStats: Codable, Sendable {
    public struct Settings: Codable, Sendable {
        public var charset: String
        public var lowercase, numeralsAsWords, splitByBook: Bool
        public var minChunk, maxChunk: Int
        public var validationFraction: Double
        public var seed: UInt64
        enum CodingKeys: String, CodingKey {
            case charset, lowercase, seed
            case numeralsAsWords = "numerals_as_words", splitByBook = "split_by_book"
            case minChunk = "min_chunk", maxChunk = "max_chunk", validationFraction = "val_fraction"
        }
    }
    public var settings: Settings
    public var books: [BookStats]
    public var trainChunks, validationChunks, trainCharacters, validationCharacters: Int
    enum CodingKeys: String, CodingKey {
        case settings, books
        case trainChunks = "train_chunks", validationChunks = "val_chunks"
        case trainCharacters = "train_chars", validationCharacters = "val_chars"
    }
}

/// Raw books → train.txt, val.txt (one chunk per line), train_enriched.jsonl and
/// stats.json. Outputs are written under temporary names and renamed at the end.
public enum DataPreparer {
    struct Chunk {
        var text: String
        var signals: TextScores.Signals
        var quality: Double
    }

    public static func run(corpus: String, out: URL, options: PrepareOptions,
                           progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> DatasetStats {
        try options.validate()
        let books = try CorpusSource.discover(corpus)
        let results = ResultsBox<Result<(BookStats, [Chunk]), any Error>>(count: books.count)
        let done = ResultsBox<Int>(count: 1)
        let normalizer = TextNormalizer(options.normalization)
        DispatchQueue.concurrentPerform(iterations: max(1, min(options.threads, books.count))) { worker in
            var i = worker
            while i < books.count {
                let result = Result { try prepareBook(books[i], normalizer: normalizer, options: options) }
                results.set(i, result)
                let n = done.update(0) { ($0 ?? 0) + 1 }
                if case .success(let (stats, _)) = result {
                    progress("[\(n)/\(books.count)] \(books[i].name): \(stats.charactersIn) → \(stats.charactersOut) characters, \(stats.chunks) chunks")
                }
                i += max(1, min(options.threads, books.count))
            }
        }
        var prepared: [(BookStats, [Chunk])] = []
        for i in 0..<books.count { prepared.append(try results.get(i)!.get()) }

        let validationBooks = options.splitByBook
            ? splitBooks(chunkCounts: prepared.map { $0.1.count }, fraction: options.validationFraction, seed: options.seed)
            : []
        var train: [String] = [], validation: [String] = [], enriched: [String] = []
        var chunkIndex: UInt64 = 0
        for (b, (_, chunks)) in prepared.enumerated() {
            for chunk in chunks {
                defer { chunkIndex += 1 }
                let toValidation = options.splitByBook
                    ? validationBooks.contains(b)
                    : unit(SplitMix64.mix(options.seed ^ SplitMix64.mix(chunkIndex))) < options.validationFraction
                if toValidation {
                    validation.append(chunk.text)
                    prepared[b].0.validationChunks += 1
                } else {
                    train.append(chunk.text)
                    prepared[b].0.trainChunks += 1
                    enriched.append(enrichedLine(chunk, books[b]))
                }
            }
        }
        let n = options.normalization
        let stats = DatasetStats(
            settings: .init(charset: n.charset.name, lowercase: n.lowercase, numeralsAsWords: n.numeralsAsWords,
                            splitByBook: options.splitByBook, minChunk: options.chunker.minLength,
                            maxChunk: options.chunker.maxLength, validationFraction: options.validationFraction,
                            seed: options.seed),
            books: prepared.map(\.0), trainChunks: train.count, validationChunks: validation.count,
            trainCharacters: train.reduce(0) { $0 + $1.count }, validationCharacters: validation.reduce(0) { $0 + $1.count })

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAll(to: out, [
            ("train.txt", Data(lines(train).utf8)),
            ("val.txt", Data(lines(validation).utf8)),
            ("train_enriched.jsonl", Data(lines(enriched).utf8)),
            ("stats.json", try encoder.encode(stats)),
        ])
        return stats
    }

    static func prepareBook(_ book: BookSource, normalizer: TextNormalizer, options: PrepareOptions) throws -> (BookStats, [Chunk]) {
        guard let data = FileManager.default.contents(atPath: book.url.path) else { throw PipelineError.notFound(book.name) }
        let (text, replaced) = try UTF8Decoding.decode(Array(data), name: book.name, policy: options.invalidUTF8)
        let (lines, format) = BoilerplateStripper.body(of: text)
        var stats = BookStats(file: book.name, author: book.author, title: book.title, category: book.category,
                              phase: book.phase, format: format.rawValue)
        stats.charactersIn = text.count
        stats.invalidUTF8Replaced = replaced
        var chunks: [Chunk] = []
        for paragraph in paragraphs(lines) {
            stats.charactersBody += paragraph.count
            let normalized = normalizer.normalize(paragraph, drops: &stats.dropped)
            let (pieces, dropped) = options.chunker.chunks(normalized)
            stats.shortPieceCharacters += dropped
            for piece in pieces {
                chunks.append(Chunk(text: piece, signals: TextScores.signals(piece), quality: TextScores.quality(piece)))
                stats.charactersOut += piece.count
            }
        }
        guard stats.charactersBody > 0 else { throw PipelineError.emptyBook(book.name) }
        stats.chunks = chunks.count
        return (stats, chunks)
    }

    /// Paragraphs are runs of non-blank lines, joined with spaces.
    static func paragraphs(_ lines: [Substring]) -> [String] {
        var out: [String] = [], current: [Substring] = []
        for line in lines {
            if line.allSatisfy(\.isWhitespace) {
                if !current.isEmpty { out.append(current.joined(separator: " ")) }
                current.removeAll()
            } else {
                current.append(line)
            }
        }
        if !current.isEmpty { out.append(current.joined(separator: " ")) }
        return out
    }

    /// Books for validation: a seeded shuffle, taken in order until they hold the wanted
    /// share of chunks. At least one book goes each way when there are two or more.
    static func splitBooks(chunkCounts: [Int], fraction: Double, seed: UInt64) -> Set<Int> {
        guard fraction > 0, chunkCounts.count >= 2 else { return [] }
        var rng = SplitMix64(seed: seed)
        let order = Array(0..<chunkCounts.count).shuffled(using: &rng)
        let target = fraction * Double(chunkCounts.reduce(0, +))
        var chosen = Set<Int>(), taken = 0
        for b in order.dropLast() where Double(taken) < target {
            chosen.insert(b)
            taken += chunkCounts[b]
        }
        return chosen
    }

    static func unit(_ x: UInt64) -> Double { Double(x >> 11) * 0x1p-53 }

    static func enrichedLine(_ chunk: Chunk, _ book: BookSource) -> String {
        "{\"text\": \(JSONText.quote(chunk.text)), \"author\": \(JSONText.quote(book.author)), "
            + "\"title\": \(JSONText.quote(book.title)), \"category\": \(JSONText.quote(book.category)), "
            + "\"phase\": \"\(book.phase)\", \"difficulty\": \(chunk.signals.difficulty), \"compression\": \(chunk.signals.compression), "
            + "\"diversity\": \(chunk.signals.diversity), \"readability\": \(chunk.signals.readability), \"quality\": \(chunk.quality)}"
    }

    static func lines(_ items: [String]) -> String { items.isEmpty ? "" : items.joined(separator: "\n") + "\n" }

    /// Writes every file under a temporary name first, then renames them all, so a run
    /// that stops early leaves no file that looks finished.
    static func writeAll(to directory: URL, _ files: [(String, Data)]) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var temps: [(URL, URL)] = []
        do {
            for (name, data) in files {
                let target = directory.appendingPathComponent(name)
                let temp = AtomicFile.temporaryURL(for: target)
                try data.write(to: temp)
                temps.append((target, temp))
            }
            for (target, temp) in temps { try AtomicFile.replace(target, with: temp) }
        } catch {
            for (_, temp) in temps { try? FileManager.default.removeItem(at: temp) }
            throw error
        }
    }
}

/// Results gathered from worker threads, one slot each.
final class ResultsBox<Value>: @unchecked Sendable {
    private var slots: [Value?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: Value) { lock.withLock { slots[i] = value } }
    func get(_ i: Int) -> Value? { lock.withLock { slots[i] } }
    func update(_ i: Int, _ body: (Value?) -> Value) -> Value {
        lock.withLock {
            let v = body(slots[i])
            slots[i] = v
            return v
        }
    }
}
