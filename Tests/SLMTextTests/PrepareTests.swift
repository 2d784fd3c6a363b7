import Foundation
import Testing
@testable import SLMText

/// `slm data prepare` end to end on small books the tests write.
@Suite struct PrepareTests {
    func corpus(_ s: Scratch) -> URL {
        s.write("books/manifest.tsv", """
        file\tauthor\ttitle\tcategory\tchars
        logic/someone_dialogues.txt\tSomeone\tDialogues\tlogic\t1
        quadrivium/euclid_treatise.txt\tEuclid\tA Treatise\tquadrivium\t1

        """)
        s.write("books/logic/someone_dialogues.txt", Fixtures.gutenberg)
        s.write("books/quadrivium/euclid_treatise.txt", Fixtures.markdown)
        return s.url.appendingPathComponent("books")
    }

    func options(fraction: Double = 0.5, seed: UInt64 = 7, byBook: Bool = false) -> PrepareOptions {
        var o = PrepareOptions(normalization: .init(charset: .ascii))
        o.chunker = Chunker(minLength: 20, maxLength: 80)
        o.validationFraction = fraction
        o.seed = seed
        o.splitByBook = byBook
        o.threads = 2
        return o
    }

    @Test func outputsAndMetadata() throws {
        let s = Scratch()
        let out = s.url.appendingPathComponent("out")
        let stats = try DataPreparer.run(corpus: corpus(s).path, out: out, options: options(fraction: 0))
        #expect(s.lines("out/val.txt").isEmpty)
        let train = s.lines("out/train.txt")
        #expect(train.count == stats.trainChunks && train.count > 3)
        #expect(train.allSatisfy { $0.count >= 20 && $0.count <= 80 })
        let records = s.lines("out/train_enriched.jsonl").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        #expect(records.count == train.count)
        for (r, text) in zip(records, train) {
            #expect(r["text"] as? String == text)
            let difficulty = r["difficulty"] as! Double, quality = r["quality"] as! Double
            #expect((0...1).contains(difficulty) && (0...1).contains(quality))
        }
        let euclid = records.filter { $0["author"] as? String == "Euclid" }
        #expect(!euclid.isEmpty && euclid.allSatisfy { $0["phase"] as? String == "quadrivium" && $0["category"] as? String == "quadrivium" })
        #expect(records.filter { $0["author"] as? String == "Someone" }.allSatisfy { $0["phase"] as? String == "trivium" })
        #expect(stats.books.map(\.format) == ["gutenberg", "markdown"])
        #expect(stats.books[0].charactersIn > stats.books[0].charactersBody)
        #expect(!s.read("out/stats.json").isEmpty)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty)
    }

    @Test func splitIsDeterministic() throws {
        let s = Scratch()
        let books = corpus(s)
        for (name, seed) in [("a", UInt64(7)), ("b", 7), ("c", 8)] {
            _ = try DataPreparer.run(corpus: books.path, out: s.url.appendingPathComponent(name), options: options(seed: seed))
        }
        #expect(s.read("a/train.txt") == s.read("b/train.txt") && s.read("a/val.txt") == s.read("b/val.txt"))
        #expect(s.read("a/val.txt") != s.read("c/val.txt"))
        #expect(Set(s.lines("a/train.txt")).isDisjoint(with: s.lines("a/val.txt")))
    }

    @Test func splitByBookKeepsBooksWhole() throws {
        let s = Scratch()
        let stats = try DataPreparer.run(corpus: corpus(s).path, out: s.url.appendingPathComponent("o"), options: options(fraction: 0.3, byBook: true))
        for book in stats.books { #expect(book.trainChunks == 0 || book.validationChunks == 0) }
        #expect(stats.trainChunks > 0 && stats.validationChunks > 0)
    }

    @Test func bareFolderAndSingleFile() throws {
        let s = Scratch()
        s.write("plain/ethics/plato_meno.txt", Fixtures.gutenberg)
        let stats = try DataPreparer.run(corpus: s.url.appendingPathComponent("plain").path, out: s.url.appendingPathComponent("o1"), options: options())
        #expect(stats.books.map(\.author) == ["Plato"] && stats.books[0].title == "Meno" && stats.books[0].category == "ethics")
        let single = try DataPreparer.run(corpus: s.url.appendingPathComponent("plain/ethics/plato_meno.txt").path,
                                          out: s.url.appendingPathComponent("o2"), options: options())
        #expect(single.trainChunks + single.validationChunks == stats.trainChunks + stats.validationChunks)
    }

    @Test func badInputFailsCleanlyAndWritesNothing() throws {
        let s = Scratch()
        let out = s.url.appendingPathComponent("out")
        #expect(throws: PipelineError.notFound(s.url.path + "/missing")) {
            try DataPreparer.run(corpus: s.url.path + "/missing", out: out, options: options())
        }
        s.write("empty/a_b.txt", "*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\n")
        #expect(throws: PipelineError.emptyBook("a_b.txt")) {
            try DataPreparer.run(corpus: s.url.appendingPathComponent("empty").path, out: out, options: options())
        }
        s.write("bad/c_d.txt", Data("Good text here.".utf8) + Data([0xFF, 0xFE]) + Data(" More text follows.".utf8))
        #expect(throws: PipelineError.invalidUTF8(path: "c_d.txt", offset: 15)) {
            try DataPreparer.run(corpus: s.url.appendingPathComponent("bad").path, out: out, options: options())
        }
        s.write("man/manifest.tsv", "file\tauthor\ttitle\tcategory\nnothere.txt\tA\tB\tlogic\n")
        #expect(throws: PipelineError.manifest(path: s.url.appendingPathComponent("man/manifest.tsv").path, line: 2,
                                               reason: "nothere.txt does not exist")) {
            try DataPreparer.run(corpus: s.url.appendingPathComponent("man").path, out: out, options: options())
        }
        var wrong = options()
        wrong.chunker = Chunker(minLength: 100, maxLength: 50)
        #expect(throws: PipelineError.self) { try DataPreparer.run(corpus: s.url.path, out: out, options: wrong) }
        #expect(!s.exists("out/train.txt"), "no output from failed runs")

        var replace = options(fraction: 0)
        replace.invalidUTF8 = .replace
        let stats = try DataPreparer.run(corpus: s.url.appendingPathComponent("bad").path, out: out, options: replace)
        #expect(stats.books[0].invalidUTF8Replaced == 2)
    }

    @Test(.enabled(if: sharedCorpus != nil, "needs ../shared/corpus"))
    func realBooksFromTheSharedCorpus() throws {
        let s = Scratch()
        let corpus = try #require(sharedCorpus)
        // One book of each source format.
        s.write("two/logic/aristotle_categories.txt", try Data(contentsOf: corpus.appendingPathComponent("raw/logic/aristotle_categories.txt")))
        s.write("two/logic/aristotle_on_interpretation.txt", try Data(contentsOf: corpus.appendingPathComponent("raw/logic/aristotle_on_interpretation.txt")))
        var o = PrepareOptions(normalization: .init(charset: .micro))
        o.threads = 2
        let stats = try DataPreparer.run(corpus: s.url.appendingPathComponent("two").path, out: s.url.appendingPathComponent("o"), options: o)
        #expect(stats.books.map(\.format) == ["gutenberg", "markdown"])
        let text = s.read("o/train.txt") + s.read("o/val.txt")
        #expect(text.contains("things are said to be named"))
        #expect(text.contains("spoken words are the symbols of mental experience"))
        #expect(text.unicodeScalars.allSatisfy { Charset.micro.contains($0) || $0 == "\n" })
        for gone in ["gutenberg", "71a", "contents"] { #expect(!text.contains(gone), "\(gone)") }
    }
}
