import Foundation
import Testing
@testable import SLMText

@Suite struct TokenFileTests {
    @Test(arguments: [TokenWidth.uint16, .uint32])
    func writeThenMapRoundTrips(_ width: TokenWidth) throws {
        let s = Scratch()
        let ids: [Int32] = width == .uint16 ? [0, 1, 65_535, 42, 7] : [0, 70_000, 1 << 30, 3]
        let url = s.url.appendingPathComponent("t.bin")
        try TokenFileWriter.write(ids, width: width, to: url)
        #expect(try Data(contentsOf: url).count == ids.count * width.bytes)
        let file = try TokenFile(url: url, width: width)
        #expect(file.count == ids.count)
        #expect(file.window(at: 0, length: ids.count) == ids)
        // Little-endian on disk whatever the host: the first id's low byte comes first.
        #expect(try Data(contentsOf: url)[width.bytes * 2] == UInt8(truncatingIfNeeded: ids[2]))
    }

    @Test func widthFollowsVocabulary() {
        #expect(TokenWidth(vocabularySize: 2000) == .uint16)
        #expect(TokenWidth(vocabularySize: 65_536) == .uint16)
        #expect(TokenWidth(vocabularySize: 65_537) == .uint32)
    }

    @Test func samplerIsSeededShiftedAndResumable() throws {
        let s = Scratch()
        let url = s.url.appendingPathComponent("t.bin")
        try TokenFileWriter.write((0..<1000).map(Int32.init), width: .uint16, to: url)
        let file = try TokenFile(url: url, width: .uint16)
        var a = try BatchSampler(file: file, batch: 4, context: 8, seed: 3)
        var b = try BatchSampler(file: file, batch: 4, context: 8, seed: 3)
        let first = a.next()
        #expect(first.inputs == b.next().inputs)
        #expect(first.inputs.count == 32)
        for row in 0..<4 {
            let x = Array(first.inputs[(row * 8)..<(row * 8 + 8)]), y = Array(first.targets[(row * 8)..<(row * 8 + 8)])
            #expect(y == x.map { $0 + 1 }, "targets are the inputs shifted by one")
        }
        // Saving the generator's state and restoring it continues the same stream.
        let saved = a.generator
        let next = a.next()
        var c = try BatchSampler(file: file, batch: 4, context: 8, seed: 99)
        c.generator = saved
        #expect(c.next().inputs == next.inputs)
        #expect(throws: PipelineError.self) { try BatchSampler(file: file, batch: 1, context: 1000, seed: 1) }
    }

    /// Two data-parallel ranks read the even and the odd rows of the batch one process
    /// reads, and their generators stay where that process's is.
    @Test func ranksShareTheBatchByStride() throws {
        let s = Scratch()
        let url = s.url.appendingPathComponent("t.bin")
        try TokenFileWriter.write((0..<1000).map(Int32.init), width: .uint16, to: url)
        let file = try TokenFile(url: url, width: .uint16)
        var whole = try BatchSampler(file: file, batch: 4, context: 8, seed: 3)
        var ranks = try (0..<2).map { _ in try BatchSampler(file: file, batch: 4, context: 8, seed: 3) }
        for _ in 0..<3 {
            let all = whole.next()
            let parts = (0..<2).map { ranks[$0].next(rank: $0, of: 2) }
            for row in 0..<4 {
                let part = parts[row % 2], local = row / 2
                #expect(Array(part.inputs[(local * 8)..<(local * 8 + 8)]) == Array(all.inputs[(row * 8)..<(row * 8 + 8)]))
                #expect(Array(part.targets[(local * 8)..<(local * 8 + 8)]) == Array(all.targets[(row * 8)..<(row * 8 + 8)]))
            }
            #expect(parts.allSatisfy { $0.inputs.count == 16 })
        }
        #expect(ranks.allSatisfy { $0.generator.state == whole.generator.state })
    }

    @Test func tokenizePreparedFolderWithCharacters() throws {
        let s = Scratch()
        s.write("books/a_b.txt", Fixtures.gutenberg)
        let data = s.url.appendingPathComponent("data")
        var options = PrepareOptions(normalization: .init(charset: .micro))
        options.chunker = Chunker(minLength: 20, maxLength: 80)
        options.validationFraction = 0
        _ = try DataPreparer.run(corpus: s.url.appendingPathComponent("books").path, out: data, options: options)
        let meta = try DatasetTokenizer.run(data: data, tokenizer: "char", threads: 2)
        #expect(meta.tokenizer == "char" && meta.charset == "micro" && meta.vocabularySize == 28 && meta.width == .uint16)
        #expect(try DatasetMeta.read(from: data) == meta)
        let tokenizer = try loadTokenizer(data.path)
        let file = try TokenFile(url: data.appendingPathComponent("train.bin"), width: meta.width)
        #expect(file.count == meta.trainTokens)
        // Micro has no newline: chunks are separated by a space.
        let decoded = try tokenizer.decode(file.window(at: 0, length: file.count))
        #expect(decoded == s.lines("data/train.txt").map { $0 + " " }.joined())
        #expect(meta.validationTokens == 0)
    }

    @Test func tokenizeNeedsAPreparedFolder() {
        let s = Scratch()
        #expect(throws: PipelineError.self) { try DatasetTokenizer.run(data: s.url, tokenizer: "char", threads: 1) }
        s.write("train.txt", "abc\n")
        s.write("val.txt", "")
        #expect(throws: TokenizerError.unknownCharset("nope")) { try DatasetTokenizer.run(data: s.url, tokenizer: "char:nope", threads: 1) }
    }
}
