import Foundation
import Testing
@testable import SLMText

@Suite struct ByteLevelBPETests {
    static let corpus = """
        The lighthouse keeper counted the ships that passed each evening, and wrote their names down.
        On stormy nights the lamp turned slowly; the keeper didn't sleep, and the ships passed safely.
        It's the keeper's book: 12 ships in 1999, 24 ships in 2009, and 365 ships by 2024!
        Café, naïve, Zürich — and 日本語, русский, 🙂 for good measure.

        """

    static func trained(_ size: Int = 400) throws -> ByteLevelBPETokenizer {
        try BPETrainer.train(texts: [String(repeating: corpus, count: 20)], vocabularySize: size, specialTokens: ["<|endoftext|>"])
    }

    static func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("slm-bpe-\(UUID().uuidString)")
    }

    @Test func byteTableIsGPT2s() {
        #expect(ByteLevel.characters[Int(UInt8(ascii: " "))] == "Ġ")
        #expect(ByteLevel.characters[0x0A] == "Ċ")
        #expect(ByteLevel.characters[Int(UInt8(ascii: "a"))] == "a")
        #expect(ByteLevel.characters[0] == "\u{100}")
        #expect(ByteLevel.characters[0xAD] == "\u{143}")
        #expect(Set(ByteLevel.characters).count == 256)
        #expect(ByteLevel.bytes(of: ByteLevel.string(of: 0...255)) == Array(0...255))
        #expect(ByteLevel.bytes(of: "日") == nil)
        #expect(ByteLevel.alphabetOrder.first == UInt8(ascii: "!") && ByteLevel.alphabetOrder.last == 0xAD)
    }

    @Test func trainingGivesTheRequestedSizeAndCompresses() throws {
        let t = try Self.trained(400)
        #expect(t.vocabularySize == 400)
        #expect(t.kind == "byte-bpe")
        #expect(t.specialTokens == ["<|endoftext|>": 0])
        #expect(t.tokens[1] == "!" && t.tokens[257] == t.tokens[Int(t.merges[0].0)] + t.tokens[Int(t.merges[0].1)])
        let ids = t.encode(Self.corpus)
        #expect(ids.count * 2 < Self.corpus.utf8.count)
        #expect(try t.decode(ids) == Self.corpus)
        #expect(ids.allSatisfy { $0 >= 0 && Int($0) < t.vocabularySize })
    }

    @Test func trainingStopsWhenNoPairRepeats() throws {
        let t = try BPETrainer.train(texts: ["abcd abcd xyz"], vocabularySize: 1000)
        // "ab", then "cd" (ties go to the smaller left id), then "abcd"; the rest occur once.
        #expect(t.merges.count == 3)
        #expect(t.vocabularySize == 256 + 3)
        #expect(t.encode("abcd") == [Int32(t.vocabularySize - 1)])
    }

    @Test func tooSmallVocabularyIsRejected() {
        #expect(throws: TokenizerError.vocabularyTooSmall(requested: 200, minimum: 257)) {
            try BPETrainer.train(texts: ["hello"], vocabularySize: 200, specialTokens: ["<|endoftext|>"])
        }
        #expect(throws: TokenizerError.vocabularyTooSmall(requested: 255, minimum: 256)) {
            try BPETrainer.train(texts: ["hello"], vocabularySize: 255)
        }
        #expect((try? BPETrainer.train(texts: ["hello"], vocabularySize: 256))?.vocabularySize == 256)
    }

    @Test func trainingOnFilesMatchesTrainingOnTheirLines() throws {
        let dir = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let text = String(repeating: Self.corpus, count: 30)
        let file = dir.appendingPathComponent("corpus.txt")
        try Data(text.utf8).write(to: file)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) + "\n" }
        lines[lines.count - 1].removeLast()
        if lines.last!.isEmpty { lines.removeLast() }
        for threads in [1, 2, 3] {
            let fromFile = try BPETrainer(vocabularySize: 350, specialTokens: ["<|endoftext|>"], threads: threads).train(files: [file])
            let fromLines = try BPETrainer(vocabularySize: 350, specialTokens: ["<|endoftext|>"], threads: 1).train(texts: lines)
            #expect(fromFile.tokens == fromLines.tokens)
            #expect(fromFile.merges.elementsEqual(fromLines.merges, by: ==))
        }
    }

    @Test func specialTokensAreSplitOutAndNotLearned() throws {
        let text = String(repeating: "one story<|endoftext|>another story<|endoftext|>", count: 50)
        let t = try BPETrainer.train(texts: [text], vocabularySize: 300, specialTokens: ["<|endoftext|>", "<|pad|>"])
        #expect(t.specialTokens == ["<|endoftext|>": 0, "<|pad|>": 1])
        #expect(!t.tokens.contains { $0.contains("endoftext") && $0 != "<|endoftext|>" })
        let ids = t.encode("story<|endoftext|><|pad|>x<|endoftext")
        #expect(ids.contains(0) && ids.contains(1))
        #expect(ids.filter { $0 == 0 }.count == 1)
        #expect(try t.decode(ids) == "story<|endoftext|><|pad|>x<|endoftext")
        #expect(t.tokenBytes(0) == Array("<|endoftext|>".utf8))
    }

    @Test func anyBytesRoundTrip() throws {
        let t = try Self.trained()
        let samples: [[UInt8]] = [
            [],
            Array("🙂🚀👩‍👩‍👧 emoji".utf8),
            Array("日本語のテキストと中文".utf8),
            Array("naïve café\u{0301}".utf8),
            [0xFF, 0xFE, 0x00, 0x80, 0xBF],        // never valid in UTF-8, NUL
            [0x41, 0x80, 0x80, 0x42],              // lone continuation bytes
            [0xE6, 0x97, 0x20, 0xF0, 0x9F, 0x99],  // truncated sequences
            [0xC0, 0xAF, 0xED, 0xA0, 0x80],        // overlong, surrogate
            Array("<|endoftext|>".utf8) + [0xFF] + Array("<|endoftext|>".utf8),
            Array(String(repeating: " ", count: 500).utf8) + Array("x".utf8),
            Array(String(repeating: "ab", count: 300).utf8),
        ]
        for bytes in samples {
            #expect(try t.decodeBytes(t.encode(bytes: bytes)) == bytes)
        }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let alphabet: [UInt8] = Array("aeht \n'.<|>".utf8) + [0x80, 0xC3, 0xA9, 0xE6, 0xF0, 0xFF]
            let n = Int.random(in: 0..<300, using: &rng)
            let bytes = (0..<n).map { _ in
                Bool.random(using: &rng) ? alphabet.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
            }
            #expect(try t.decodeBytes(t.encode(bytes: bytes)) == bytes)
        }
        #expect(t.encode("") == [])
    }

    /// BPE as the papers state it: merge the lowest-ranked adjacent pair (leftmost first) until none is left.
    static func referenceMerge(_ piece: [UInt8], _ t: ByteLevelBPETokenizer) -> [Int32] {
        var ids: [String: Int32] = [:]
        for (id, token) in t.tokens.enumerated() { ids[token] = Int32(id) }
        var rank: [String: Int] = [:]
        for (r, (a, b)) in t.merges.enumerated() { rank[t.tokens[Int(a)] + " " + t.tokens[Int(b)]] = r }
        var symbols = piece.map { String(ByteLevel.characters[Int($0)]) }
        while symbols.count > 1 {
            var best: (rank: Int, at: Int)?
            for k in 0..<(symbols.count - 1) {
                if let r = rank[symbols[k] + " " + symbols[k + 1]], r < best?.rank ?? .max { best = (r, k) }
            }
            guard let (_, k) = best else { break }
            symbols[k] += symbols[k + 1]
            symbols.remove(at: k + 1)
        }
        return symbols.map { ids[$0]! }
    }

    @Test func mergingMatchesTheTextbookAlgorithm() throws {
        let t = try Self.trained()
        // Pieces over 64 bytes take the heap path, shorter ones the rescanning one.
        var pieces = ["keeper", "lighthouse", " the", "ships", String(repeating: "keeper", count: 30),
                      String(repeating: "aab", count: 40), String(repeating: " ", count: 200)]
        var rng = SystemRandomNumberGenerator()
        let letters = Array("theskiprngowaldc")
        for _ in 0..<200 {
            pieces.append(String((0..<Int.random(in: 2..<150, using: &rng)).map { _ in letters.randomElement(using: &rng)! }))
        }
        for piece in pieces {
            #expect(t.encode(piece) == Self.referenceMerge(Array(piece.utf8), t), "\(piece)")
        }
    }

    @Test func parallelEncodingGivesTheSameIds() throws {
        let t = try Self.trained()
        let text = String(repeating: Self.corpus + "<|endoftext|>", count: 600)
        let serial = t.encode(text)
        #expect(t.encode(text, threads: 2) == serial)
        #expect(t.encode(text, threads: 3) == serial)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(t.encodeBatch(lines, threads: 2) == lines.map { t.encode($0) })
    }

    @Test func unknownIdsAreRejected() throws {
        let t = try Self.trained()
        #expect(t.tokenBytes(400) == nil && t.tokenBytes(-1) == nil)
        #expect(throws: TokenizerError.unknownID(400, vocabularySize: 400)) { try t.decode([1, 400]) }
    }
}
