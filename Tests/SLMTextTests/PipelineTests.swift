import Foundation
import Testing
@testable import SLMText

@Suite struct BoilerplateTests {
    @Test func gutenbergHeaderFooterAndCreditsGo() {
        let (lines, format) = BoilerplateStripper.body(of: Fixtures.gutenberg)
        #expect(format == .gutenberg)
        let text = lines.joined(separator: "\n")
        #expect(text.contains("The first paragraph of the book"))
        #expect(text.contains("answers with a question"))
        for gone in ["Project Gutenberg", "Produced by", "Licence", "START OF", "\r"] { #expect(!text.contains(gone), "\(gone)") }
    }

    @Test func markdownMarkupGoes() {
        let (lines, format) = BoilerplateStripper.body(of: Fixtures.markdown)
        #expect(format == .markdown)
        let text = lines.joined(separator: "\n")
        #expect(text.contains("All teaching and all learning start from what is already known. This is evident if we look."))
        #expect(text.contains("A second paragraph follows here"))
        for gone in ["#", "71a", "[^1]", "Cf. 72b", "footnote body", "First chapter", "next work", "*", "---"] {
            #expect(!text.contains(gone), "\(gone)")
        }
    }

    @Test func bracketedPageAndNoteNumbersGo() {
        #expect(BoilerplateStripper.stripBracketedNumbers("as [1271a] said,[2] see [note] and [a]") == "as  said, see [note] and [a]")
    }
}

@Suite struct NormalizationTests {
    func normalize(_ s: String, _ charset: Charset, lowercase: Bool = false, numerals: Bool = false) -> (String, DropCounts) {
        var drops = DropCounts()
        let out = TextNormalizer(.init(charset: charset, lowercase: lowercase, numeralsAsWords: numerals)).normalize(s, drops: &drops)
        return (out, drops)
    }

    @Test func typographyAccentsAndLigatures() {
        let (out, drops) = normalize("“Naïve” café — the ﬁrst æon’s end…  Fin¹", .ascii)
        #expect(out == "\"Naive\" cafe - the first aeon's end... Fin")
        #expect(drops.footnoteMarks == 1)
    }

    @Test func microCharset() {
        let (out, drops) = normalize("Hello, World! It's 42.", .micro)
        #expect(out == "hello world. its .")
        #expect(drops.outsideCharset == ["'": 1, "4": 1, "2": 1])
    }

    @Test func classicCharset() {
        let (out, drops) = normalize("Hello, World! It's [42]; x/y.", .classic)
        #expect(out == "hello, world! it's (); x y.")
        #expect(drops.outsideCharset == ["4": 1, "2": 1])
    }

    @Test func asciiCharsetKeepsCaseAndDropsTheRest() {
        let (out, drops) = normalize("Ratio: 3 α to 4\tβ", .ascii)
        #expect(out == "Ratio: 3 to 4")
        #expect(drops.outsideCharset == ["α": 1, "β": 1])
    }

    @Test func numeralsAsWords() {
        let (out, _) = normalize("In 1,234 years and 3.5 days, 42 men saw 100.", .ascii, lowercase: true, numerals: true)
        #expect(out == "in one thousand two hundred thirty-four years and three point five days, forty-two men saw one hundred.")
        #expect(NumberWords.words(0) == "zero")
        #expect(NumberWords.words(1_000_015) == "one million fifteen")
    }
}

@Suite struct ChunkerTests {
    @Test func chunksRespectBoundsAndSentences() {
        let text = (1...40).map { "Sentence number \(String(repeating: "x", count: $0 % 7)) ends here." }.joined(separator: " ")
        let chunker = Chunker(minLength: 40, maxLength: 120)
        let (chunks, _) = chunker.chunks(text)
        #expect(!chunks.isEmpty)
        for c in chunks {
            #expect(c.count >= 40 && c.count <= 120, "\(c.count): \(c)")
            #expect(c.hasSuffix("."), "chunks end at sentence ends: \(c)")
        }
        #expect(chunks.joined(separator: " ") == text, "nothing lost or reordered")
    }

    @Test func overLongSentencesBreakAtSpaces() {
        let long = Array(repeating: "word", count: 100).joined(separator: " ")
        let (chunks, _) = Chunker(minLength: 10, maxLength: 50).chunks(long)
        #expect(chunks.allSatisfy { $0.count <= 50 && !$0.hasPrefix(" ") && !$0.hasSuffix(" ") })
        #expect(chunks.joined(separator: " ") == long)
    }

    @Test func shortPiecesJoinOrDrop() {
        let (chunks, dropped) = Chunker(minLength: 20, maxLength: 100).chunks("Tiny.")
        #expect(chunks.isEmpty && dropped == 5)
        let (joined, none) = Chunker(minLength: 20, maxLength: 100).chunks("This sentence is long enough to stand. Tiny.")
        #expect(joined == ["This sentence is long enough to stand. Tiny."] && none == 0)
    }
}

@Suite struct UTF8Tests {
    @Test func invalidBytesAreLocated() {
        #expect(UTF8Decoding.firstInvalidOffset(Array("abc".utf8) + [0xFF] + Array("def".utf8)) == 3)
        #expect(UTF8Decoding.firstInvalidOffset(Array("é€😀".utf8)) == nil)
        #expect(UTF8Decoding.firstInvalidOffset([0x61, 0xE2, 0x82]) == 1)          // truncated
        #expect(UTF8Decoding.firstInvalidOffset([0xC0, 0x80]) == 0)                // overlong
        #expect(UTF8Decoding.firstInvalidOffset([0xED, 0xA0, 0x80]) == 0)          // surrogate
    }
}
