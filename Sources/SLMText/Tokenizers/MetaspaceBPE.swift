import Foundation
import SLMSupport

/// SentencePiece-style BPE as Llama 2 and its descendants (TinyLlama among them) ship it
/// in a Hugging Face `tokenizer.json`: spaces become "▁" (U+2581) and one is put in front
/// of the text; the BPE runs over Unicode characters, and a character outside the
/// vocabulary falls back to its UTF-8 bytes as `<0xNN>` tokens. Two spellings of the
/// same pipeline are read:
/// - Llama 2's: a `Prepend("▁")` + `Replace(" ", "▁")` normalizer and no pre-tokenizer;
/// - the newer one: a `Metaspace` pre-tokenizer (`prepend_scheme` always, first or never;
///   `split` true cuts the text before every "▁").
/// A `TemplateProcessing` post-processor's special tokens before the text (Llama's `<s>`)
/// are `promptPrefix`; `encode` leaves them out, as training text wants. Those after the
/// text (an end of sequence) are not put after prompts.
public struct MetaspaceBPETokenizer: Tokenizer {
    public let kind = "metaspace-bpe"
    public var vocabularySize: Int { tokens.count }
    public let specialTokens: [String: Int32]
    public let promptPrefix: [Int32]
    /// `</s>` when the vocabulary has it (Llama's end of sequence).
    public var endOfTextID: Int32? { specialTokens["</s>"] ?? specialTokens["<|endoftext|>"] }

    public enum Prepend: String, Sendable {
        /// The normalizer's `Prepend`: every stretch of text between added tokens.
        case everySegment
        /// Metaspace `always`: every stretch that does not already start with "▁".
        case always
        /// Metaspace `first`: only the stretch at the start of the text.
        case first
        case never
    }

    public let tokens: [String]
    public let prepend: Prepend
    public let splitOnMetaspace: Bool
    let byteFallback: Bool
    let fuseUnknown: Bool
    let unknownID: Int32?
    private let ids: [String: Int32]
    /// The `<0xNN>` token of each byte, -1 where missing.
    private let byteTokens: [Int32]
    /// Each id's bytes when decoded: "▁" as a space, `<0xNN>` as its byte.
    private let decoded: [[UInt8]]
    /// (left, right) → rank << 32 | merged id.
    private let mergeTable: PairTable
    private let matcher: AddedTokenMatcher
    /// The file as read, written back unchanged by `save`.
    private let sourceJSON: [UInt8]

    static let metaspace: Character = "▁"

    init(tokens: [String], merges: [(String, String)], addedTokens: [AddedToken], prepend: Prepend, split: Bool,
         byteFallback: Bool, fuseUnknown: Bool, unknownToken: String?, prefix: [Int32],
         sourceJSON: [UInt8], path: String) throws(TokenizerError) {
        self.tokens = tokens
        self.prepend = prepend
        self.splitOnMetaspace = split
        self.byteFallback = byteFallback
        self.fuseUnknown = fuseUnknown
        self.sourceJSON = sourceJSON
        promptPrefix = prefix
        var ids: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() where ids[t] == nil { ids[t] = Int32(i) }
        self.ids = ids
        if let unknownToken {
            guard let id = ids[unknownToken] else { throw .invalidFile(path: path, reason: "unk_token \(unknownToken) is not in the vocabulary") }
            unknownID = id
        } else {
            unknownID = nil
        }
        byteTokens = (0..<256).map { ids[String(format: "<0x%02X>", $0)] ?? -1 }
        if byteFallback, byteTokens.contains(-1) {
            throw .invalidFile(path: path, reason: "byte_fallback is on, but the vocabulary lacks some of the 256 <0xNN> tokens")
        }
        let special = Set(addedTokens.filter(\.special).map(\.id))
        decoded = tokens.enumerated().map { i, t in
            if !special.contains(Int32(i)), t.count == 6, t.hasPrefix("<0x"), t.hasSuffix(">"), let b = UInt8(t.dropFirst(3).prefix(2), radix: 16) {
                return [b]
            }
            return Array(t.replacingOccurrences(of: String(Self.metaspace), with: " ").utf8)
        }
        var table = PairTable(minimumCapacity: merges.count)
        for (rank, (a, b)) in merges.enumerated() {
            guard let left = ids[a], let right = ids[b], let merged = ids[a + b] else {
                throw .invalidFile(path: path, reason: "merge \(rank) (\(JSONText.quote(a)) \(JSONText.quote(b))) names a token outside the vocabulary")
            }
            if table.value(left, right) == PairTable.missing { table.set(left, right, UInt64(rank) << 32 | UInt64(UInt32(merged))) }
        }
        mergeTable = table
        matcher = AddedTokenMatcher(addedTokens)
        specialTokens = Dictionary(addedTokens.filter(\.special).map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: Decoding

    public func tokenBytes(_ id: Int32) -> [UInt8]? {
        guard id >= 0, Int(id) < decoded.count else { return nil }
        return decoded[Int(id)]
    }

    // MARK: Encoding

    public func encode(_ text: String) -> [Int32] {
        var out: [Int32] = []
        let bytes = Array(text.utf8)
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            matcher.split(base, 0..<buffer.count) { range, added in
                if let added { return out.append(added) }
                let segment = String(decoding: UnsafeBufferPointer(rebasing: buffer[range]), as: UTF8.self)
                encodeSegment(segment, atStart: range.lowerBound == 0, into: &out)
            }
        }
        return out
    }

    /// One stretch of text between added tokens: spaces to "▁", the prefix, then BPE
    /// over the whole stretch or over each "▁"-led piece of it.
    private func encodeSegment(_ text: String, atStart: Bool, into out: inout [Int32]) {
        let marker = String(Self.metaspace)
        var s = text.replacingOccurrences(of: " ", with: marker)
        switch prepend {
        case .everySegment: s = marker + s
        case .always where !s.hasPrefix(marker): s = marker + s
        case .first where atStart && !s.hasPrefix(marker): s = marker + s
        default: break
        }
        let scalars = Array(s.unicodeScalars)
        guard splitOnMetaspace else { return merge(scalars[...], into: &out) }
        var start = 0
        for i in scalars.indices where i > start && scalars[i] == "▁" {
            merge(scalars[start..<i], into: &out)
            start = i
        }
        if start < scalars.count { merge(scalars[start...], into: &out) }
    }

    /// Characters to ids (bytes or unknown for those outside the vocabulary), then the
    /// lowest-ranked adjacent pair merged first, leftmost among equals, as `tokenizers`
    /// does; a heap keeps long stretches (Llama 2 does not split) n log n.
    private func merge(_ scalars: ArraySlice<Unicode.Scalar>, into out: inout [Int32]) {
        var symbols: [Int32] = []
        symbols.reserveCapacity(scalars.count)
        var lastWasUnknown = false
        for c in scalars {
            if let id = ids[String(c)] {
                symbols.append(id)
                lastWasUnknown = false
            } else if byteFallback {
                for b in String(c).utf8 { symbols.append(byteTokens[Int(b)]) }
                lastWasUnknown = false
            } else if let unknownID {
                if !(fuseUnknown && lastWasUnknown) { symbols.append(unknownID) }
                lastWasUnknown = true
            }
        }
        let n = symbols.count
        guard n > 1 else { return out.append(contentsOf: symbols) }
        var next = Array(1...n), previous = Array(-1..<(n - 1))
        // Heap entries: rank << 32 | position; stale ones are skipped when popped.
        var heap = MinHeap()
        for i in 0..<(n - 1) {
            let v = mergeTable.value(symbols[i], symbols[i + 1])
            if v != PairTable.missing { heap.push(v & 0xFFFF_FFFF_0000_0000 | UInt64(i)) }
        }
        while let top = heap.pop() {
            let i = Int(top & 0xFFFF_FFFF), j = next[i]
            guard symbols[i] >= 0, j < n else { continue }
            let v = mergeTable.value(symbols[i], symbols[j])
            guard v != PairTable.missing, v >> 32 == top >> 32 else { continue }
            symbols[i] = Int32(truncatingIfNeeded: v & 0xFFFF_FFFF)
            symbols[j] = -1
            next[i] = next[j]
            if next[i] < n { previous[next[i]] = i }
            if previous[i] >= 0 {
                let w = mergeTable.value(symbols[previous[i]], symbols[i])
                if w != PairTable.missing { heap.push(w & 0xFFFF_FFFF_0000_0000 | UInt64(previous[i])) }
            }
            if next[i] < n {
                let w = mergeTable.value(symbols[i], symbols[next[i]])
                if w != PairTable.missing { heap.push(w & 0xFFFF_FFFF_0000_0000 | UInt64(i)) }
            }
        }
        out.append(contentsOf: symbols.lazy.filter { $0 >= 0 })
    }

    /// Writes the `tokenizer.json` it was read from, unchanged.
    public func save(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicFile.write(Data(sourceJSON), to: directory.appendingPathComponent("tokenizer.json"))
    }
}

// MARK: Reading tokenizer.json

extension MetaspaceBPETokenizer {
    /// Whether a parsed `tokenizer.json` is in this form (a Metaspace pre-tokenizer or
    /// decoder, a "▁" normalizer, or byte fallback) rather than byte-level BPE.
    static func recognizes(_ root: JSONValue) -> Bool {
        func mentionsMetaspace(_ v: JSONValue?) -> Bool {
            guard let v else { return false }
            switch v {
            case .string(let s): return s == "Metaspace" || s == "Prepend" || s.contains("▁")
            case .array(let items): return items.contains { mentionsMetaspace($0) }
            case .object(let members): return members.contains { mentionsMetaspace($0.value) }
            default: return false
            }
        }
        if case .bool(true)? = root["model"]?["byte_fallback"] { return true }
        return mentionsMetaspace(root["normalizer"]) || mentionsMetaspace(root["pre_tokenizer"]) || mentionsMetaspace(root["decoder"])
    }

    /// Parses the text of a `tokenizer.json`; `path` is for error messages. Components
    /// that would change the ids and are not the ones above are refused, not ignored.
    public init(huggingFaceJSON bytes: [UInt8], path: String) throws(TokenizerError) {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes) } catch { throw .invalidFile(path: path, reason: error.description) }
        let r = HFReader(path: path)
        guard case .object = root else { throw r.invalid("the document is \(root.kindName), not an object") }
        for key in ["truncation", "padding"] {
            if let v = root[key], !v.isNull { throw r.unsupported("\(key) settings") }
        }
        let marker = String(Self.metaspace)

        var prepend = Prepend.never, split = false
        var replacesSpaces = false
        for step in Self.steps(root["normalizer"]) {
            switch r.typeName(step) {
            case "Prepend" where step["prepend"]?.stringValue == marker:
                prepend = .everySegment
            case "Replace" where step["pattern"]?["String"]?.stringValue == " " && step["content"]?.stringValue == marker:
                replacesSpaces = true
            default:
                throw r.unsupported("normalizer step \(r.typeName(step)) (only Prepend(\"▁\") and Replace(\" \", \"▁\") are read)")
            }
        }
        if let pre = root["pre_tokenizer"], !pre.isNull {
            guard r.typeName(pre) == "Metaspace", pre["replacement"]?.stringValue ?? marker == marker else {
                throw r.unsupported("pre_tokenizer \(r.typeName(pre)) with a Metaspace BPE")
            }
            guard prepend == .never else { throw r.unsupported("a Prepend normalizer and a Metaspace pre-tokenizer together") }
            // Older files say add_prefix_space instead of prepend_scheme.
            let addsPrefix = try r.bool(pre["add_prefix_space"], "pre_tokenizer.add_prefix_space", default: true)
            let scheme = pre["prepend_scheme"]?.stringValue ?? (addsPrefix ? "always" : "never")
            switch scheme {
            case "always": prepend = .always
            case "first": prepend = .first
            case "never": prepend = .never
            default: throw r.invalid("pre_tokenizer.prepend_scheme \(JSONText.quote(scheme)) is not always, first or never")
            }
            split = try r.bool(pre["split"], "pre_tokenizer.split", default: true)
            replacesSpaces = true
        }
        guard replacesSpaces else { throw r.unsupported("a Metaspace BPE whose spaces are not replaced by \"▁\"") }

        for step in Self.steps(root["decoder"]) {
            guard ["Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"].contains(r.typeName(step)) else {
                throw r.unsupported("decoder step \(r.typeName(step))")
            }
        }

        guard let model = root["model"], case .object = model else { throw r.invalid("model is missing or not an object") }
        guard model["type"]?.stringValue ?? "BPE" == "BPE" else { throw r.unsupported("model \(r.typeName(model))") }
        if let v = model["dropout"], !v.isNull { throw r.unsupported("BPE dropout") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key], !v.isNull, v.stringValue != "" { throw r.unsupported(key) }
        }
        if try r.bool(model["ignore_merges"], "model.ignore_merges", default: false) { throw r.unsupported("ignore_merges with a Metaspace BPE") }
        let vocab = try r.vocabulary(model["vocab"] ?? .null, at: "model.vocab")
        let merges = try r.merges(model["merges"] ?? .array([]))
        let added = try r.addedTokens(root["added_tokens"] ?? .array([]))
        let (tokens, _) = try r.tokensByID(vocab, added)
        var unknown: String?
        if let unk = model["unk_token"], !unk.isNull {
            guard case .string(let s) = unk else { throw r.invalid("model.unk_token is \(unk.kindName), not a string") }
            unknown = s
        }

        var prefix: [Int32] = []
        if let post = root["post_processor"], !post.isNull {
            guard r.typeName(post) == "TemplateProcessing", case .array(let single)? = post["single"] else {
                throw r.unsupported("post_processor \(r.typeName(post))")
            }
            for piece in single {
                if piece["Sequence"] != nil { break }
                guard let name = piece["SpecialToken"]?["id"]?.stringValue,
                      case .array(let idValues)? = post["special_tokens"]?[name]?["ids"] else {
                    throw r.invalid("post_processor.single has a piece that is neither a Sequence nor a listed SpecialToken")
                }
                for v in idValues {
                    guard case .integer(let id) = v, id >= 0, id < tokens.count else { throw r.invalid("post_processor special token \(name) has an id outside the vocabulary") }
                    prefix.append(Int32(id))
                }
            }
        }
        try self.init(tokens: tokens, merges: merges, addedTokens: added, prepend: prepend, split: split,
                      byteFallback: try r.bool(model["byte_fallback"], "model.byte_fallback", default: false),
                      fuseUnknown: try r.bool(model["fuse_unk"], "model.fuse_unk", default: false), unknownToken: unknown,
                      prefix: prefix, sourceJSON: bytes, path: path)
    }

    /// The steps of a component: those of a Sequence, or the one; none for null.
    private static func steps(_ v: JSONValue?) -> [JSONValue] {
        guard let v, !v.isNull else { return [] }
        if v["type"]?.stringValue == "Sequence" {
            if case .array(let items)? = v["normalizers"] ?? v["decoders"] ?? v["pretokenizers"] { return items }
            return []
        }
        return [v]
    }
}
