import Foundation
import Testing
@testable import SLMText

/// Against files written by Hugging Face `tokenizers` (Fixtures/make_hf_fixture.py).
@Suite struct HuggingFaceCompatibilityTests {
    static func fixture(_ name: String) throws -> URL {
        try #require(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
    }

    struct Case {
        var text: String
        var ids: [Int32]
    }

    static func cases(_ key: String = "cases") throws -> [Case] {
        let root = try JSONValue.parse([UInt8](Data(contentsOf: fixture("hf_bpe_expected.json"))))
        guard case .array(let items)? = root[key] else { throw TokenizerError.notFound(key) }
        return items.map { item in
            guard case .string(let text)? = item["text"], case .array(let ids)? = item["ids"] else { return Case(text: "?", ids: []) }
            return Case(text: text, ids: ids.map { if case .integer(let n) = $0 { Int32(n) } else { -1 } })
        }
    }

    static func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("slm-hf-\(UUID().uuidString)")
    }

    @Test func encodesExactlyAsTokenizersDoes() throws {
        let t = try ByteLevelBPETokenizer(tokenizerJSON: Self.fixture("hf_bpe_tokenizer.json"))
        #expect(t.vocabularySize == 400)
        #expect(t.specialTokens == ["<|endoftext|>": 0])
        let cases = try Self.cases()
        #expect(cases.count >= 25)
        for c in cases {
            #expect(t.encode(c.text) == c.ids, "\(c.text.debugDescription)")
            #expect(try t.decode(c.ids) == c.text)
        }
    }

    @Test func addsAPrefixSpaceAsTokenizersDoes() throws {
        let bytes = try Self.replacing(#""add_prefix_space": false"#, #""add_prefix_space": true"#)
        let t = try ByteLevelBPETokenizer(huggingFaceJSON: bytes, path: "prefixed.json")
        #expect(t.options.preTokenizer.addPrefixSpace)
        let cases = try Self.cases("add_prefix_space_cases")
        #expect(cases.count >= 25)
        for c in cases { #expect(t.encode(c.text) == c.ids, "\(c.text.debugDescription)") }
        #expect(Array(t.huggingFaceJSON().utf8) == bytes)
    }

    @Test func savesTokenizersFileByteForByte() throws {
        let original = try Data(contentsOf: Self.fixture("hf_bpe_tokenizer.json"))
        let t = try ByteLevelBPETokenizer(tokenizerJSON: Self.fixture("hf_bpe_tokenizer.json"))
        #expect(Data(t.huggingFaceJSON().utf8) == original)
    }

    @Test func saveLoadSaveIsByteIdentical() throws {
        let dir = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try BPETrainer.train(files: [Self.fixture("hf_bpe_training.txt")], vocabularySize: 380,
                                     specialTokens: ["<|endoftext|>", "<|pad|>"])
        try t.save(to: dir)
        let names = ["tokenizer.json", "vocab.json", "merges.txt"]
        let first = try names.map { try Data(contentsOf: dir.appendingPathComponent($0)) }
        let loaded = try #require(try loadTokenizer(dir.path) as? ByteLevelBPETokenizer)
        #expect(loaded.tokens == t.tokens && loaded.addedTokens == t.addedTokens && loaded.options == t.options)
        try loaded.save(to: dir)
        #expect(try names.map { try Data(contentsOf: dir.appendingPathComponent($0)) } == first)
        let text = "The keeper's 🐈<|pad|> counted 1,000 ships.<|endoftext|>"
        #expect(loaded.encode(text) == t.encode(text))
    }

    @Test func vocabAndMergesFilesRoundTrip() throws {
        let dir = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let hf = try ByteLevelBPETokenizer(tokenizerJSON: Self.fixture("hf_bpe_tokenizer.json"))
        try hf.save(to: dir)
        try FileManager.default.removeItem(at: dir.appendingPathComponent("tokenizer.json"))
        let t = try #require(try loadTokenizer(dir.path) as? ByteLevelBPETokenizer)
        #expect(t.tokens == hf.tokens)
        #expect(t.specialTokens == ["<|endoftext|>": 0])
        for c in try Self.cases() { #expect(t.encode(c.text) == c.ids) }
        #expect(t.vocabJSON() == hf.vocabJSON() && t.mergesText() == hf.mergesText())
        #expect(String(decoding: try Data(contentsOf: dir.appendingPathComponent("merges.txt")), as: UTF8.self).hasPrefix("#version: 0.2\n"))
    }

    @Test func trainerLearnsWhatTokenizersLearns() throws {
        // Same text, size, special token and minimum frequency as the fixture script.
        let ours = try BPETrainer.train(files: [Self.fixture("hf_bpe_training.txt")], vocabularySize: 400,
                                        specialTokens: ["<|endoftext|>"])
        let theirs = try ByteLevelBPETokenizer(tokenizerJSON: Self.fixture("hf_bpe_tokenizer.json"))
        #expect(ours.tokens == theirs.tokens)
        #expect(ours.merges.elementsEqual(theirs.merges, by: ==))
        #expect(ours.huggingFaceJSON() == theirs.huggingFaceJSON())
    }

    @Test func readsMergesWrittenAsStrings() throws {
        let pairs = try String(decoding: Data(contentsOf: Self.fixture("hf_bpe_tokenizer.json")), as: UTF8.self)
        // Rewrite [\n "a",\n "b"\n ] pairs as "a b" strings, the older layout.
        let oldStyle = try NSRegularExpression(pattern: #"\[\s*"((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)"\s*\]"#)
            .stringByReplacingMatches(in: pairs, range: NSRange(pairs.startIndex..., in: pairs), withTemplate: "\"$1 $2\"")
        #expect(oldStyle != pairs && oldStyle.contains("\"Ġ t\""))
        let t = try ByteLevelBPETokenizer(huggingFaceJSON: Array(oldStyle.utf8), path: "old.json")
        for c in try Self.cases() { #expect(t.encode(c.text) == c.ids) }
    }

    @Test func readsGPT2StyleFilesWithoutModelType() throws {
        // GPT-2's tokenizer.json: no model type, empty-string prefixes, merges as strings,
        // a normalized added token, no use_regex fields.
        let bytes = try Self.edited { text in
            for (old, new) in [("\"type\": \"BPE\",\n", ""), ("\"continuing_subword_prefix\": null", "\"continuing_subword_prefix\": \"\""),
                               ("\"normalized\": false", "\"normalized\": true"), (",\n    \"use_regex\": true", "")] {
                #expect(text.contains(old))
                text = text.replacingOccurrences(of: old, with: new)
            }
        }
        let t = try ByteLevelBPETokenizer(huggingFaceJSON: bytes, path: "gpt2.json")
        #expect(t.addedTokens.first?.normalized == true)
        for c in try Self.cases() { #expect(t.encode(c.text) == c.ids) }
    }

    // MARK: Files we must refuse

    static func edited(_ edit: (inout String) -> Void) throws -> [UInt8] {
        var text = try String(decoding: Data(contentsOf: fixture("hf_bpe_tokenizer.json")), as: UTF8.self)
        edit(&text)
        return Array(text.utf8)
    }

    static func replacing(_ old: String, _ new: String) throws -> [UInt8] {
        try edited { text in
            #expect(text.contains(old))
            text = text.replacingOccurrences(of: old, with: new)
        }
    }

    static func unsupported(_ bytes: [UInt8]) -> String? {
        do {
            _ = try ByteLevelBPETokenizer(huggingFaceJSON: bytes, path: "t.json")
            return nil
        } catch .unsupported(_, let what) {
            return what
        } catch {
            return "other error: \(error)"
        }
    }

    @Test func unsupportedComponentsAreRefusedByName() throws {
        #expect(Self.unsupported(try Self.replacing(#""normalizer": null"#, #""normalizer": {"type": "NFC"}"#)) == "normalizer NFC")
        #expect(Self.unsupported(try Self.replacing(#""type": "ByteLevel",\#n    "add_prefix_space": false"#,
                                                    #""type": "Whitespace",\#n    "add_prefix_space": false"#)) == "pre_tokenizer Whitespace")
        #expect(Self.unsupported(try Self.replacing(#""type": "BPE""#, #""type": "WordPiece""#)) == "model WordPiece")
        #expect(Self.unsupported(try Self.replacing(#""byte_fallback": false"#, #""byte_fallback": true"#)) == "byte_fallback")
        #expect(Self.unsupported(try Self.replacing(#""continuing_subword_prefix": null"#, ###""continuing_subword_prefix": "##""###)) == "continuing_subword_prefix")
        #expect(Self.unsupported(try Self.replacing(#""end_of_word_suffix": null"#, #""end_of_word_suffix": "</w>""#)) == "end_of_word_suffix")
        #expect(Self.unsupported(try Self.replacing(#""dropout": null"#, #""dropout": 0.1"#)) == "BPE dropout")
        #expect(Self.unsupported(try Self.replacing(#""truncation": null"#, #""truncation": {"max_length": 8}"#)) == "truncation settings")
        #expect(Self.unsupported(try Self.replacing(#""lstrip": false"#, #""lstrip": true"#)) == "added token \"<|endoftext|>\" with lstrip")
        #expect(Self.unsupported(try Self.replacing(#""decoder": {"#, #""decoder": {"type": "WordPiece"}, "x": {"#)) == "decoder WordPiece")
        #expect(Self.unsupported(try Self.replacing(#""pre_tokenizer": {"#, #""pre_tokenizer": null, "x": {"#))?.hasPrefix("no pre_tokenizer") == true)
    }

    static func invalidReason(_ bytes: [UInt8]) -> String? {
        do {
            _ = try ByteLevelBPETokenizer(huggingFaceJSON: bytes, path: "t.json")
            return nil
        } catch .invalidFile(let path, let reason) {
            #expect(path == "t.json")
            return reason
        } catch {
            return "other error: \(error)"
        }
    }

    @Test func malformedFilesAreInvalid() throws {
        let valid = try Self.edited { _ in }
        #expect(Self.invalidReason(Array(valid.dropLast(10)))?.hasPrefix("malformed JSON") == true)
        #expect(Self.invalidReason(Array("[1, 2]".utf8)) == "the document is an array, not an object")
        #expect(Self.invalidReason(Array("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}} ".utf8)) != nil)
        #expect(Self.invalidReason(Array("{\"a\": tru}".utf8))?.hasPrefix("malformed JSON") == true)
        #expect(Self.invalidReason(Array("{\"a\": \"\\ud800\"}".utf8))?.contains("surrogate") == true)
        #expect(Self.invalidReason(try Self.replacing(#""ignore_merges": false"#, #""ignore_merges": 0"#)) == "model.ignore_merges is a number, not a boolean")
        #expect(Self.invalidReason(try Self.replacing(#""Ġ": 221"#, #""Ġ": -3"#))?.contains("not a non-negative integer") == true)
        #expect(Self.invalidReason(try Self.replacing(#""Ġ": 221"#, #""Ġ": 222"#))?.contains("id 222 to two tokens") == true)
        // A merge whose result is not in the vocabulary.
        #expect(Self.invalidReason(try Self.edited { text in
            let first = text.range(of: "\"merges\": [\n")!
            text.insert(contentsOf: "      [\"q\", \"z\"],\n", at: first.upperBound)
        })?.contains("which is not in the vocabulary") == true)
    }

    @Test func loadTokenizerFindsEachFormat() throws {
        let dir = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        #expect(throws: TokenizerError.notFound(dir.path)) { try loadTokenizer(dir.path) }
        try FileManager.default.copyItem(at: Self.fixture("hf_bpe_tokenizer.json"), to: dir.appendingPathComponent("tokenizer.json"))
        #expect(try loadTokenizer(dir.path).kind == "byte-bpe")
        try Data("{not json".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        #expect {
            try loadTokenizer(dir.path)
        } throws: { error in
            guard case .invalidFile(let path, _)? = error as? TokenizerError else { return false }
            return path.hasSuffix("tokenizer.json")
        }
        #expect(try loadTokenizer("char").kind == "char")
    }
}
