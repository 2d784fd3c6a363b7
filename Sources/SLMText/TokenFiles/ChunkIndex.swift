import Foundation
import SLMSupport

/// Where each training chunk lies in train.bin and what the pipeline knows of it, so that
/// the trainer can sample by chunk without reading train_enriched.jsonl.
///
/// `train_chunks.bin`: a 16-byte header (`SLMCHUNK`, then version 1 and the record size
/// 32 as little-endian uint32), then one 32-byte little-endian record per chunk in
/// train.txt's order: uint64 first token, uint32 tokens (the separator after the chunk
/// included), uint16 book, uint16 category (indices into meta.json's `chunks.books` and
/// `chunks.categories`), then float32 compression, diversity, readability (the three
/// difficulty signals, each in [0, 1], higher harder) and quality.
public struct ChunkIndex: Sendable, Equatable {
    public struct Chunk: Sendable, Equatable {
        public var start: Int
        public var length: Int
        public var book: Int
        public var category: Int
        public var compression, diversity, readability, quality: Float

        public init(start: Int, length: Int, book: Int, category: Int, compression: Float, diversity: Float,
                    readability: Float, quality: Float) {
            (self.start, self.length, self.book, self.category) = (start, length, book, category)
            (self.compression, self.diversity, self.readability, self.quality) = (compression, diversity, readability, quality)
        }

        /// The mean of the three signals, as `TextScores.Signals.difficulty`.
        public var difficulty: Float { (compression + diversity + readability) / 3 }
    }

    /// meta.json's description of the index.
    public struct Meta: Codable, Sendable, Equatable {
        public var file: String
        public var count: Int
        public var categories: [String]
        public var books: [String]
    }

    public static let fileName = "train_chunks.bin"
    static let magic = Array("SLMCHUNK".utf8)
    static let recordSize = 32

    public var chunks: [Chunk]
    public var categories: [String]
    public var books: [String]

    public init(chunks: [Chunk], categories: [String], books: [String]) {
        (self.chunks, self.categories, self.books) = (chunks, categories, books)
    }

    public var meta: Meta { Meta(file: Self.fileName, count: chunks.count, categories: categories, books: books) }

    public func write(to url: URL) throws {
        var data = Data(Self.magic)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        put(UInt32(1))
        put(UInt32(Self.recordSize))
        for c in chunks {
            put(UInt64(c.start))
            put(UInt32(c.length))
            put(UInt16(c.book))
            put(UInt16(c.category))
            for f in [c.compression, c.diversity, c.readability, c.quality] { put(f.bitPattern) }
        }
        try AtomicFile.write(data, to: url)
    }

    /// Reads and checks the index against meta.json's description and train.bin's length:
    /// chunks in order, back to back, inside the file, with known books and categories.
    public static func read(directory: URL, meta: Meta, trainTokens: Int) throws -> ChunkIndex {
        let url = directory.appendingPathComponent(meta.file)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw PipelineError.notFound("\(url.path) (meta.json names it; run `slm data tokenize` again)")
        }
        func bad(_ why: String) -> PipelineError { .invalidOption("\(url.path): \(why); run `slm data tokenize` again") }
        let bytes = [UInt8](data)
        guard bytes.count >= 16, Array(bytes[0..<8]) == magic else { throw bad("not a chunk index") }
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        guard load(8, UInt32.self) == 1, load(12, UInt32.self) == UInt32(recordSize) else { throw bad("unknown version or record size") }
        guard (bytes.count - 16) % recordSize == 0, (bytes.count - 16) / recordSize == meta.count else {
            throw bad("\((bytes.count - 16) / recordSize) records where meta.json says \(meta.count)")
        }
        var chunks: [Chunk] = []
        chunks.reserveCapacity(meta.count)
        var expectedStart = 0
        for i in 0..<meta.count {
            let o = 16 + i * recordSize
            let c = Chunk(start: Int(load(o, UInt64.self)), length: Int(load(o + 8, UInt32.self)), book: Int(load(o + 12, UInt16.self)),
                          category: Int(load(o + 14, UInt16.self)), compression: Float(bitPattern: load(o + 16, UInt32.self)),
                          diversity: Float(bitPattern: load(o + 20, UInt32.self)), readability: Float(bitPattern: load(o + 24, UInt32.self)),
                          quality: Float(bitPattern: load(o + 28, UInt32.self)))
            guard c.start == expectedStart, c.length > 0, c.start + c.length <= trainTokens else {
                throw bad("chunk \(i) covers tokens \(c.start)..<\(c.start + c.length), expected to start at \(expectedStart) within \(trainTokens)")
            }
            guard c.book < meta.books.count, c.category < meta.categories.count else { throw bad("chunk \(i) names an unknown book or category") }
            guard [c.compression, c.diversity, c.readability, c.quality].allSatisfy({ $0.isFinite }) else {
                throw bad("chunk \(i) has a score that is not a number")
            }
            expectedStart += c.length
            chunks.append(c)
        }
        guard expectedStart == trainTokens else { throw bad("the chunks cover \(expectedStart) of train.bin's \(trainTokens) tokens") }
        return ChunkIndex(chunks: chunks, categories: meta.categories, books: meta.books)
    }

    /// The index of train.txt's chunks from train_enriched.jsonl (one record per line, in
    /// the same order) and each chunk's token count; nil, with the reason, when the two
    /// disagree (a data directory prepared before the signals existed, or edited since).
    static func build(enriched url: URL, tokenCounts: [Int]) -> (index: ChunkIndex?, problem: String?) {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return (nil, "\(url.lastPathComponent) is missing") }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.count == tokenCounts.count else {
            return (nil, "\(url.lastPathComponent) has \(lines.count) records for \(tokenCounts.count) chunks in train.txt")
        }
        var categories: [String] = [], books: [String] = []
        var categoryIDs: [String: Int] = [:], bookIDs: [String: Int] = [:]
        var chunks: [Chunk] = []
        chunks.reserveCapacity(lines.count)
        var start = 0
        for (line, count) in zip(lines, tokenCounts) {
            guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let category = record["category"] as? String, let author = record["author"] as? String,
                  let title = record["title"] as? String, let compression = record["compression"] as? Double,
                  let diversity = record["diversity"] as? Double, let readability = record["readability"] as? Double,
                  let quality = record["quality"] as? Double else {
                return (nil, "\(url.lastPathComponent) lacks the difficulty signals (prepared by an older version; run `slm data prepare` again)")
            }
            let book = "\(author) — \(title)"
            if categoryIDs[category] == nil { categoryIDs[category] = categories.count; categories.append(category) }
            if bookIDs[book] == nil { bookIDs[book] = books.count; books.append(book) }
            guard books.count <= Int(UInt16.max), categories.count <= Int(UInt16.max) else {
                return (nil, "more than \(UInt16.max) books or categories")
            }
            chunks.append(Chunk(start: start, length: count, book: bookIDs[book]!, category: categoryIDs[category]!,
                                compression: Float(compression), diversity: Float(diversity), readability: Float(readability),
                                quality: Float(quality)))
            start += count
        }
        return (ChunkIndex(chunks: chunks, categories: categories, books: books), nil)
    }
}
