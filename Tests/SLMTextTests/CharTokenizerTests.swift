import Foundation
import SLMSupport
import Testing
@testable import SLMText

@Suite struct CharTokenizerTests {
    @Test func charsetsHaveTheirDocumentedSizes() {
        #expect(Charset.micro.characters.count == 28)
        #expect(Charset.classic.characters.count == 26 + 12)
        #expect(Charset.ascii.characters.count == 95 + 1)
        #expect(throws: TokenizerError.unknownCharset("greek")) { try Charset.named("greek") }
    }

    @Test func roundTripAndSkippedCharacters() throws {
        let t = CharTokenizer(charset: .micro)
        let (ids, skipped) = t.encodeCounting("the cave. a fire!")
        #expect(skipped == 1)  // "!" is not in micro
        #expect(try t.decode(ids) == "the cave. a fire")
        #expect(ids.first == t.id(of: "t"))
        #expect(t.id(of: " ") == 0 && t.id(of: ".") == 1 && t.id(of: "a") == 2)
        #expect(throws: TokenizerError.unknownID(28, vocabularySize: 28)) { try t.decode([28]) }
    }

    @Test func vocabFileRoundTripsByteForByte() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slm-char-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = CharTokenizer(charset: .ascii)
        try t.save(to: dir)
        let first = try Data(contentsOf: dir.appendingPathComponent("vocab.json"))
        let loaded = try #require(try loadTokenizer(dir.path) as? CharTokenizer)
        #expect(loaded.characters == t.characters)
        try loaded.save(to: dir)
        #expect(try Data(contentsOf: dir.appendingPathComponent("vocab.json")) == first)
        #expect(String(decoding: first, as: UTF8.self).contains("\"\\n\": 0"))
    }

    @Test func jsonQuoting() {
        #expect(JSONText.quote("a\"b\\c\n\u{01}é") == "\"a\\\"b\\\\c\\n\\u0001é\"")
    }
}
