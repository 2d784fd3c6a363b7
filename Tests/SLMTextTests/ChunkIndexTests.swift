import Foundation
import Testing
@testable import SLMText

/// The chunk index that `slm data tokenize` writes beside train.bin, and windows drawn by chunk.
@Suite struct ChunkIndexTests {
    /// Two books in two categories, prepared and tokenized by character.
    func tokenized(_ s: Scratch) throws -> (URL, DatasetMeta) {
        let prepare = PrepareTests()
        var options = prepare.options(fraction: 0)
        options.chunker = Chunker(minLength: 20, maxLength: 60)
        let out = s.url.appendingPathComponent("data")
        _ = try DataPreparer.run(corpus: prepare.corpus(s).path, out: out, options: options)
        return (out, try DatasetTokenizer.run(data: out, tokenizer: "char", threads: 2))
    }

    /// Each record covers exactly its chunk's tokens (the text, then the separator), in
    /// train.txt's order, with its book, category and the pipeline's signals.
    @Test func recordsCoverTheirChunks() throws {
        let s = Scratch()
        let (data, meta) = try tokenized(s)
        let chunks = try #require(meta.chunks)
        #expect(chunks.categories == ["logic", "quadrivium"] && chunks.books.count == 2)
        let index = try ChunkIndex.read(directory: data, meta: chunks, trainTokens: meta.trainTokens)
        let lines = s.lines("data/train.txt")
        #expect(index.chunks.count == lines.count && lines.count > 3)
        let file = try TokenFile(url: data.appendingPathComponent("train.bin"), width: meta.width)
        let tokenizer = CharTokenizer(charset: .ascii)
        for (c, line) in zip(index.chunks, lines) {
            let ids = file.window(at: c.start, length: c.length)
            let text = try tokenizer.decode(Array(ids.dropLast()))
            #expect(ids.last == meta.separator && text == line)
            let signals = TextScores.signals(line)
            #expect(c.compression == Float(signals.compression) && c.diversity == Float(signals.diversity)
                    && c.readability == Float(signals.readability) && c.quality == Float(TextScores.quality(line)))
            #expect(index.categories[c.category] == (index.books[c.book].hasPrefix("Euclid") ? "quadrivium" : "logic"))
        }
    }

    @Test func damagedIndexesAreRefused() throws {
        let s = Scratch()
        let (data, meta) = try tokenized(s)
        let chunks = try #require(meta.chunks)
        let url = data.appendingPathComponent(ChunkIndex.fileName)
        let good = try Data(contentsOf: url)
        var wrongCount = chunks
        wrongCount.count += 1
        #expect(throws: PipelineError.self) { try ChunkIndex.read(directory: data, meta: wrongCount, trainTokens: meta.trainTokens) }
        #expect(throws: PipelineError.self) { try ChunkIndex.read(directory: data, meta: chunks, trainTokens: meta.trainTokens + 1) }
        try good.prefix(good.count - 32).write(to: url)
        #expect(throws: PipelineError.self) { try ChunkIndex.read(directory: data, meta: chunks, trainTokens: meta.trainTokens) }
        var shifted = good
        shifted[16] ^= 1   // the first chunk no longer starts at token 0
        try shifted.write(to: url)
        #expect(throws: PipelineError.self) { try ChunkIndex.read(directory: data, meta: chunks, trainTokens: meta.trainTokens) }
    }

    /// Without the pipeline's signals there is no index, and an old one is removed.
    @Test func noEnrichedRecordsNoIndex() throws {
        let s = Scratch()
        let (data, _) = try tokenized(s)
        try FileManager.default.removeItem(at: data.appendingPathComponent("train_enriched.jsonl"))
        let meta = try DatasetTokenizer.run(data: data, tokenizer: "char", threads: 1)
        #expect(meta.chunks == nil)
        #expect(!FileManager.default.fileExists(atPath: data.appendingPathComponent(ChunkIndex.fileName).path))
    }

    /// Windows start at chunk starts, by weight, and end inside their book.
    @Test func windowsFollowTheWeightsAndStayInTheirBook() throws {
        let s = Scratch()
        let (data, meta) = try tokenized(s)
        let index = try ChunkIndex.read(directory: data, meta: meta.chunks!, trainTokens: meta.trainTokens)
        let file = try TokenFile(url: data.appendingPathComponent("train.bin"), width: meta.width)
        let context = 64
        var draw = ChunkDraw(index: index, context: context, fileCount: file.count)
        let books = Dictionary(grouping: index.chunks, by: \.book).mapValues { ($0.map(\.start).min()!, $0.map { $0.start + $0.length }.max()!) }
        // Only the second category, then all chunks by length.
        draw.setWeights(index.chunks.map { $0.category == 1 ? 1 : 0 })
        var generator = SplitMix64(seed: 3)
        for _ in 0..<500 {
            let start = draw.window(for: generator.next()).start
            let chunk = index.chunks.last { $0.start <= start }!
            let (lo, hi) = books[chunk.book]!
            #expect(index.categories[chunk.category] == "quadrivium" && start >= lo && start + context + 1 <= hi)
        }
        draw.setWeights(index.chunks.map { Double($0.length) })
        var perCategory = [0, 0]
        for _ in 0..<4000 {
            let start = draw.window(for: generator.next()).start
            perCategory[index.chunks.last { $0.start <= start }!.category] += 1
        }
        let share = Double(index.chunks.filter { $0.category == 0 }.reduce(0) { $0 + $1.length }) / Double(meta.trainTokens)
        #expect(abs(Double(perCategory[0]) / 4000 - share) < 0.05, "\(perCategory) against a share of \(share)")
    }
}
