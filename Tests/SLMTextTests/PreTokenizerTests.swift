import Foundation
import Testing
@testable import SLMText

/// The expected pieces were checked against `tokenizers`' ByteLevel pre-tokenizer
/// (`pre_tokenize_str`, add_prefix_space False).
@Suite struct PreTokenizerTests {
    func pieces(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return [] }
            var scanner = PieceScanner(base, from: 0, to: buffer.count)
            var out: [[UInt8]] = []
            while let r = scanner.next() { out.append(Array(buffer[r])) }
            return out
        }
    }

    func pieces(_ text: String) -> [String] {
        pieces(Array(text.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func contractionsAreCaseSensitive() {
        #expect(pieces("it's don't we'll they've I'm you're he'd")
            == ["it", "'s", " don", "'t", " we", "'ll", " they", "'ve", " I", "'m", " you", "'re", " he", "'d"])
        #expect(pieces("'sun") == ["'s", "un"])
        #expect(pieces("'S'LL 's") == ["'", "S", "'", "LL", " '", "s"])
        #expect(pieces("''s") == ["''", "s"])
        #expect(pieces(" '") == [" '"])
    }

    @Test func whitespaceRunsLeaveTheirLastSpaceToTheNextWord() {
        #expect(pieces("a   b") == ["a", "  ", " b"])
        #expect(pieces("a   ") == ["a", "   "])
        #expect(pieces("   ") == ["   "])
        #expect(pieces("end  ") == ["end", "  "])
        #expect(pieces("x  123") == ["x", " ", " 123"])
        #expect(pieces("a \n\n b") == ["a", " \n\n", " b"])
        #expect(pieces("foo\n  bar") == ["foo", "\n ", " bar"])
    }

    @Test func newlinesTabsAndOtherSpaces() {
        #expect(pieces("x\n\ny") == ["x", "\n", "\n", "y"])
        #expect(pieces("x\r\ny") == ["x", "\r", "\n", "y"])
        #expect(pieces("a\tb") == ["a", "\t", "b"])
        #expect(pieces(" \tword") == [" ", "\t", "word"])
        #expect(pieces("a\u{A0}b") == ["a", "\u{A0}", "b"])
        #expect(pieces("a \u{A0}b") == ["a", " ", "\u{A0}", "b"])
        #expect(pieces("\u{2003}x") == ["\u{2003}", "x"])
    }

    @Test func digitsAndPunctuation() {
        #expect(pieces("abc123 456") == ["abc", "123", " 456"])
        #expect(pieces("3.14") == ["3", ".", "14"])
        #expect(pieces("A1b2") == ["A", "1", "b", "2"])
        #expect(pieces("!!!???") == ["!!!???"])
        #expect(pieces(" !!!a") == [" !!!", "a"])
        #expect(pieces("hello, world.") == ["hello", ",", " world", "."])
    }

    @Test func nonLatinLettersAndEmoji() {
        #expect(pieces("日本語 テキスト") == ["日本語", " テキスト"])
        #expect(pieces("Ελληνικά русский") == ["Ελληνικά", " русский"])
        #expect(pieces("🙂🚀 ok") == ["🙂🚀", " ok"])
        #expect(pieces(" 🙂") == [" 🙂"])
        // Combining marks are neither letters nor numbers.
        #expect(pieces("e\u{301}t\u{301}") == ["e", "\u{301}", "t", "\u{301}"])
        #expect(pieces("") == [])
    }

    @Test func invalidUTF8BytesAreSymbols() {
        #expect(pieces([0x61, 0xFF, 0xFE, 0x62]) == [[0x61], [0xFF, 0xFE], [0x62]])
        // A lone continuation byte, a truncated 3-byte sequence, an overlong encoding, a surrogate.
        #expect(pieces([0x20, 0x80, 0x41]) == [[0x20, 0x80], [0x41]])
        #expect(pieces([0x41, 0xE6, 0x97]) == [[0x41], [0xE6, 0x97]])
        #expect(pieces([0xC0, 0xAF, 0x20, 0xED, 0xA0, 0x80]) == [[0xC0, 0xAF], [0x20, 0xED, 0xA0, 0x80]])
    }

    @Test func piecesAlwaysCoverTheInput() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let bytes = (0..<Int.random(in: 0..<200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let ps = pieces(bytes)
            #expect(Array(ps.joined()) == bytes)
            #expect(ps.allSatisfy { !$0.isEmpty })
        }
    }

    @Test func neutralChunksDoNotChangeThePieces() {
        let line = "The keeper's  lamp   turned.\nIt's 42\n\n  ok\n"
        let text = Array(String(repeating: line, count: 3000).utf8)
        text.withUnsafeBufferPointer { buffer in
            let chunks = PieceScanner.neutralChunks(buffer, count: 3)
            #expect(chunks.count == 3)
            var chunked: [[UInt8]] = []
            for c in chunks { chunked += pieces(Array(buffer[c])) }
            #expect(chunked == pieces(text))
        }
    }
}
