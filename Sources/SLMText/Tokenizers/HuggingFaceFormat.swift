import Foundation
import SLMSupport

/// Hugging Face `tokenizer.json` and GPT-2 `vocab.json` + `merges.txt`, read and written.
///
/// `tokenizer.json` is written the way `tokenizers` (0.2x, `save(pretty=True)`) writes
/// it, key order and layout included, so a file it wrote loads and saves back byte for
/// byte. Anything in a file that would change the ids and that we do not implement
/// (a normalizer, another pre-tokenizer or model, BPE dropout, subword prefixes, byte
/// fallback, …) is refused with `TokenizerError.unsupported` rather than ignored.
extension ByteLevelBPETokenizer {
    /// Reads a `tokenizer.json`.
    public init(tokenizerJSON url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TokenizerError.invalidFile(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        try self.init(huggingFaceJSON: [UInt8](data), path: url.path)
    }

    /// Reads GPT-2's `vocab.json` and `merges.txt`. Vocabulary entries that are neither
    /// a byte nor made by a merge (such as `<|endoftext|>`) can only be reached as added
    /// tokens, so they become special tokens.
    public init(vocabJSON vocabURL: URL, merges mergesURL: URL) throws {
        let vocabData: Data, mergesData: Data
        do {
            vocabData = try Data(contentsOf: vocabURL)
            mergesData = try Data(contentsOf: mergesURL)
        } catch {
            throw TokenizerError.invalidFile(path: vocabURL.deletingLastPathComponent().path, reason: "cannot read: \(error.localizedDescription)")
        }
        let path = vocabURL.path
        let root: JSONValue
        do { root = try JSONValue.parse([UInt8](vocabData)) } catch {
            throw TokenizerError.invalidFile(path: path, reason: error.description)
        }
        let vocab = try HFReader(path: path).vocabulary(root, at: "the document")
        guard let text = String(validating: [UInt8](mergesData), as: UTF8.self) else {
            throw TokenizerError.invalidFile(path: mergesURL.path, reason: "not valid UTF-8")
        }
        var merges: [(String, String)] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = line.hasSuffix("\r") ? line.dropLast() : line
            if line.isEmpty || (n == 0 && line.hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.invalidFile(path: mergesURL.path, reason: "line \(n + 1) is not two tokens separated by one space")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        let largest = vocab.map(\.id).max() ?? -1
        // Ids must be dense, so a larger id than there are tokens is refused before it
        // sizes an allocation (a 9 KB file once asked for gigabytes).
        guard largest < vocab.count else {
            throw TokenizerError.invalidFile(path: path, reason: "ids are not 0..<\(vocab.count): \(vocab.count) tokens, but the largest id is \(largest)")
        }
        var tokens = [String?](repeating: nil, count: largest + 1)
        for (token, id) in vocab {
            guard tokens[id] == nil else { throw TokenizerError.invalidFile(path: path, reason: "id \(id) is given to two tokens") }
            tokens[id] = token
        }
        if let missing = tokens.firstIndex(where: { $0 == nil }) {
            throw TokenizerError.invalidFile(path: path, reason: "ids are not 0..<\(tokens.count): id \(missing) has no token")
        }
        let complete = tokens.map { $0! }
        let reachable = Set(merges.map { $0.0 + $0.1 }).union(ByteLevel.characters.map { String($0) })
        let added = complete.enumerated().filter { !reachable.contains($0.element) }
            .map { AddedToken(id: Int32($0.offset), content: $0.element, special: true, normalized: false) }
        try self.init(tokens: complete, inModelVocabulary: [Bool](repeating: true, count: complete.count), merges: merges,
                      addedTokens: added, options: Options(), source: path)
    }

    /// Parses the text of a `tokenizer.json`; `path` is for error messages.
    public init(huggingFaceJSON bytes: [UInt8], path: String) throws(TokenizerError) {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes) } catch {
            throw TokenizerError.invalidFile(path: path, reason: error.description)
        }
        let r = HFReader(path: path)
        guard case .object = root else { throw r.invalid("the document is \(root.kindName), not an object") }

        for key in ["truncation", "padding"] {
            if let v = root[key], !v.isNull { throw r.unsupported("\(key) settings") }
        }
        if let v = root["normalizer"], !v.isNull { throw r.unsupported("normalizer \(r.typeName(v))") }

        var options = Options()
        guard let pre = root["pre_tokenizer"], !pre.isNull else { throw r.unsupported("no pre_tokenizer; byte-level BPE needs ByteLevel") }
        options.preTokenizer = try r.byteLevel(pre, "pre_tokenizer")
        options.postProcessor = nil
        if let v = root["post_processor"], !v.isNull { options.postProcessor = try r.byteLevel(v, "post_processor") }
        options.decoder = nil
        if let v = root["decoder"], !v.isNull { options.decoder = try r.byteLevel(v, "decoder") }

        guard let model = root["model"], case .object = model else { throw r.invalid("model is missing or not an object") }
        // Older files (GPT-2's on the Hub among them) leave the type out; `tokenizers` then
        // recognises BPE by its merges.
        let isBPE: Bool
        if case .string(let type)? = model["type"] { isBPE = type == "BPE" } else { isBPE = model["merges"] != nil }
        guard isBPE else { throw r.unsupported("model \(r.typeName(model))") }
        if let v = model["dropout"], !v.isNull { throw r.unsupported("BPE dropout") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key], !v.isNull, v.stringValue != "" { throw r.unsupported(key) }
        }
        if try r.bool(model["byte_fallback"], "model.byte_fallback", default: false) { throw r.unsupported("byte_fallback") }
        options.fuseUnknown = try r.bool(model["fuse_unk"], "model.fuse_unk", default: false)
        options.ignoreMerges = try r.bool(model["ignore_merges"], "model.ignore_merges", default: false)
        if let unk = model["unk_token"], !unk.isNull {
            guard case .string(let s) = unk else { throw r.invalid("model.unk_token is \(unk.kindName), not a string") }
            options.unknownToken = s
        }

        guard let vocabValue = model["vocab"] else { throw r.invalid("model.vocab is missing") }
        let vocab = try r.vocabulary(vocabValue, at: "model.vocab")
        let merges = try r.merges(model["merges"] ?? .array([]))
        let added = try r.addedTokens(root["added_tokens"] ?? .array([]))

        let (tokens, inModel) = try r.tokensByID(vocab, added)
        try self.init(tokens: tokens, inModelVocabulary: inModel, merges: merges, addedTokens: added,
                      options: options, source: path)
    }

    // MARK: Writing

    /// `tokenizer.json` text, laid out as `tokenizers` writes it (two-space indents, no
    /// final newline, vocabulary in id order, merges as pairs).
    public func huggingFaceJSON() -> String {
        var out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
        if addedTokens.isEmpty {
            out += "  \"added_tokens\": [],\n"
        } else {
            out += "  \"added_tokens\": [\n"
            for (n, t) in addedTokens.enumerated() {
                out += """
                    {
                      "id": \(t.id),
                      "content": \(JSONText.quote(t.content)),
                      "single_word": false,
                      "lstrip": false,
                      "rstrip": false,
                      "normalized": \(t.normalized),
                      "special": \(t.special)
                    }
                """
                out += n + 1 < addedTokens.count ? ",\n" : "\n"
            }
            out += "  ],\n"
        }
        out += "  \"normalizer\": null,\n"
        out += "  \"pre_tokenizer\": \(Self.json(options.preTokenizer)),\n"
        out += "  \"post_processor\": \(options.postProcessor.map(Self.json) ?? "null"),\n"
        out += "  \"decoder\": \(options.decoder.map(Self.json) ?? "null"),\n"
        out += """
              "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": \(options.unknownToken.map(JSONText.quote) ?? "null"),
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": \(options.fuseUnknown),
                "byte_fallback": false,
                "ignore_merges": \(options.ignoreMerges),

            """
        let modelIDs = tokens.indices.filter { inModelVocabulary[$0] }
        if modelIDs.isEmpty {
            out += "    \"vocab\": {},\n"
        } else {
            out += "    \"vocab\": {\n"
            for (n, id) in modelIDs.enumerated() {
                out += "      \(JSONText.quote(tokens[id])): \(id)"
                out += n + 1 < modelIDs.count ? ",\n" : "\n"
            }
            out += "    },\n"
        }
        if merges.isEmpty {
            out += "    \"merges\": []\n"
        } else {
            out += "    \"merges\": [\n"
            for (n, (a, b)) in merges.enumerated() {
                out += "      [\n        \(JSONText.quote(tokens[Int(a)])),\n        \(JSONText.quote(tokens[Int(b)]))\n      ]"
                out += n + 1 < merges.count ? ",\n" : "\n"
            }
            out += "    ]\n"
        }
        out += "  }\n}"
        return out
    }

    private static func json(_ s: ByteLevelSettings) -> String {
        """
        {
            "type": "ByteLevel",
            "add_prefix_space": \(s.addPrefixSpace),
            "trim_offsets": \(s.trimOffsets),
            "use_regex": \(s.useRegex)
          }
        """
    }

    /// GPT-2's `vocab.json`: one line, model tokens in id order.
    public func vocabJSON() -> String {
        let entries = tokens.indices.filter { inModelVocabulary[$0] }.map { "\(JSONText.quote(tokens[$0])):\($0)" }
        return "{" + entries.joined(separator: ",") + "}"
    }

    /// GPT-2's `merges.txt`: a version line, then one "left right" line per merge.
    public func mergesText() -> String {
        var out = "#version: 0.2\n"
        for (a, b) in merges { out += tokens[Int(a)] + " " + tokens[Int(b)] + "\n" }
        return out
    }
}

/// Field-by-field checks of a `tokenizer.json`, with errors naming the field.
struct HFReader {
    let path: String

    func invalid(_ reason: String) -> TokenizerError { .invalidFile(path: path, reason: reason) }
    func unsupported(_ what: String) -> TokenizerError { .unsupported(path: path, what: what) }

    /// "Sequence", "NFC", … for messages about components we do not implement.
    func typeName(_ v: JSONValue) -> String {
        if case .string(let s)? = v["type"] { return s }
        return v.kindName
    }

    func bool(_ v: JSONValue?, _ name: String, default value: Bool) throws(TokenizerError) -> Bool {
        guard let v, !v.isNull else { return value }
        guard case .bool(let b) = v else { throw invalid("\(name) is \(v.kindName), not a boolean") }
        return b
    }

    /// A ByteLevel pre-tokenizer, post-processor or decoder (missing fields take
    /// `tokenizers`' defaults).
    func byteLevel(_ v: JSONValue, _ name: String) throws(TokenizerError) -> ByteLevelBPETokenizer.ByteLevelSettings {
        guard case .object = v else { throw invalid("\(name) is \(v.kindName), not an object") }
        guard case .string("ByteLevel")? = v["type"] else { throw unsupported("\(name) \(typeName(v))") }
        return .init(addPrefixSpace: try bool(v["add_prefix_space"], "\(name).add_prefix_space", default: true),
                     trimOffsets: try bool(v["trim_offsets"], "\(name).trim_offsets", default: true),
                     useRegex: try bool(v["use_regex"], "\(name).use_regex", default: true))
    }

    func vocabulary(_ v: JSONValue, at name: String) throws(TokenizerError) -> [(token: String, id: Int)] {
        guard case .object(let members) = v else { throw invalid("\(name) is \(v.kindName), not an object of token → id") }
        var out: [(token: String, id: Int)] = []
        out.reserveCapacity(members.count)
        for (token, value) in members {
            guard case .integer(let id) = value, id >= 0, id < Int(Int32.max) else {
                throw invalid("\(name): the id of \(JSONText.quote(token)) is not a non-negative integer")
            }
            out.append((token, id))
        }
        return out
    }

    /// Merges as "left right" strings (older files) or [left, right] pairs (newer ones).
    func merges(_ v: JSONValue) throws(TokenizerError) -> [(String, String)] {
        guard case .array(let items) = v else { throw invalid("model.merges is \(v.kindName), not an array") }
        var out: [(String, String)] = []
        out.reserveCapacity(items.count)
        for (n, item) in items.enumerated() {
            switch item {
            case .string(let s):
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    throw invalid("model.merges[\(n)] is not two tokens separated by one space")
                }
                out.append((String(parts[0]), String(parts[1])))
            case .array(let pair):
                guard pair.count == 2, case .string(let a) = pair[0], case .string(let b) = pair[1] else {
                    throw invalid("model.merges[\(n)] is not a pair of strings")
                }
                out.append((a, b))
            default:
                throw invalid("model.merges[\(n)] is \(item.kindName), not a string or a pair")
            }
        }
        return out
    }

    /// Each id's token, from the model's vocabulary and the added tokens, and whether
    /// it is in the model's vocabulary; ids must be 0..<count.
    func tokensByID(_ vocab: [(token: String, id: Int)], _ added: [AddedToken]) throws(TokenizerError) -> ([String], [Bool]) {
        let count = max(vocab.map(\.id).max() ?? -1, added.map { Int($0.id) }.max() ?? -1) + 1
        // Ids must be dense: refuse a larger id than there are tokens before it sizes an
        // allocation (a 9 KB file once asked for gigabytes).
        guard count <= vocab.count + added.count else {
            throw invalid("ids are not 0..<\(count): \(vocab.count + added.count) tokens, but the largest id is \(count - 1)")
        }
        var tokens = [String?](repeating: nil, count: count)
        var inModel = [Bool](repeating: false, count: count)
        for (token, id) in vocab {
            guard tokens[id] == nil else { throw invalid("model.vocab gives id \(id) to two tokens") }
            tokens[id] = token
            inModel[id] = true
        }
        for t in added {
            if let existing = tokens[Int(t.id)] {
                guard existing == t.content else {
                    throw invalid("added token \(JSONText.quote(t.content)) has id \(t.id), which the vocabulary gives to \(JSONText.quote(existing))")
                }
            } else {
                tokens[Int(t.id)] = t.content
            }
        }
        if let missing = tokens.firstIndex(where: { $0 == nil }) {
            throw invalid("ids are not 0..<\(count): id \(missing) has no token")
        }
        return (tokens.map { $0! }, inModel)
    }

    func addedTokens(_ v: JSONValue) throws(TokenizerError) -> [AddedToken] {
        guard case .array(let items) = v else { throw invalid("added_tokens is \(v.kindName), not an array") }
        var out: [AddedToken] = []
        for (n, item) in items.enumerated() {
            guard case .object = item, case .integer(let id)? = item["id"], id >= 0, id < Int(Int32.max),
                  case .string(let content)? = item["content"], !content.isEmpty else {
                throw invalid("added_tokens[\(n)] needs an integer id and a non-empty content")
            }
            for flag in ["single_word", "lstrip", "rstrip"] {
                if try bool(item[flag], "added_tokens[\(n)].\(flag)", default: false) {
                    throw unsupported("added token \(JSONText.quote(content)) with \(flag)")
                }
            }
            out.append(AddedToken(id: Int32(id), content: content,
                                  special: try bool(item["special"], "added_tokens[\(n)].special", default: false),
                                  normalized: try bool(item["normalized"], "added_tokens[\(n)].normalized", default: true)))
        }
        return out
    }
}

extension JSONValue {
    var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}
