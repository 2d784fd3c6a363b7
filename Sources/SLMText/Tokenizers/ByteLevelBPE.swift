import Foundation
import SLMSupport

/// Byte-level BPE as GPT-2 and Hugging Face `tokenizers` define it: added tokens are
/// split out first, the rest is cut into pieces by the GPT-2 pre-tokenizer, and each
/// piece's bytes are merged pairwise, lowest merge rank first. Reads and writes
/// Hugging Face's `tokenizer.json` and GPT-2's `vocab.json` + `merges.txt`
/// (HuggingFaceFormat.swift); `BPETrainer` learns one from text.
///
/// Any byte string encodes (invalid UTF-8 included) and decodes back unchanged, as long
/// as the vocabulary holds all 256 byte tokens (trained ones always do) and
/// `addPrefixSpace` is off.
public struct ByteLevelBPETokenizer: Tokenizer {
    public let kind = "byte-bpe"
    public var vocabularySize: Int { tokens.count }
    public let specialTokens: [String: Int32]

    /// Each id's token as vocabulary files write it: byte-level characters (`Ġthe`) for
    /// model tokens, the text itself for added tokens.
    public let tokens: [String]
    /// The merges in rank order, as pairs of ids.
    public let merges: [(Int32, Int32)]
    public let addedTokens: [AddedToken]
    public let options: Options

    /// Settings of the Hugging Face pipeline that we honour or carry through a load/save.
    public struct Options: Sendable, Equatable {
        public var preTokenizer = ByteLevelSettings(addPrefixSpace: false, trimOffsets: true, useRegex: true)
        /// Only written back (they change offsets, not ids); nil for JSON null.
        public var postProcessor: ByteLevelSettings? = ByteLevelSettings(addPrefixSpace: true, trimOffsets: false, useRegex: true)
        public var decoder: ByteLevelSettings? = ByteLevelSettings(addPrefixSpace: true, trimOffsets: true, useRegex: true)
        /// Stands in for a byte that has no token (only for vocabularies without all 256).
        public var unknownToken: String?
        public var fuseUnknown = false
        /// Hugging Face's `ignore_merges`: a piece that is itself a token is not merged.
        public var ignoreMerges = false

        public init() {}
    }

    /// The fields of Hugging Face's ByteLevel pre-tokenizer, post-processor and decoder.
    public struct ByteLevelSettings: Sendable, Equatable {
        public var addPrefixSpace: Bool
        public var trimOffsets: Bool
        public var useRegex: Bool

        public init(addPrefixSpace: Bool, trimOffsets: Bool, useRegex: Bool) {
            self.addPrefixSpace = addPrefixSpace
            self.trimOffsets = trimOffsets
            self.useRegex = useRegex
        }
    }

    /// Which ids are in the model's vocabulary (`model.vocab`); the others are added tokens only.
    let inModelVocabulary: [Bool]
    /// The token of each byte value, -1 where the vocabulary lacks it.
    private let byteIDs: [Int32]
    /// (left, right) → rank << 32 | merged id.
    private let mergeTable: PairTable
    /// Raw bytes of every id: `byteArena[byteOffsets[id]..<byteOffsets[id + 1]]`.
    private let byteOffsets: [Int]
    private let byteArena: [UInt8]
    /// Hugging Face matches tokens that skip normalization first, then the others.
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let unknownID: Int32?
    /// Whole pieces that are tokens, for `ignoreMerges`.
    private let wholeTokenIDs: [[UInt8]: Int32]

    /// Builds a tokenizer from its vocabulary (by id), which ids are in the model's
    /// vocabulary, merges as token pairs in rank order, and added tokens.
    /// `source` names where the data came from in error messages.
    init(tokens: [String], inModelVocabulary: [Bool], merges mergeStrings: [(String, String)],
         addedTokens: [AddedToken], options: Options, source: String) throws(TokenizerError) {
        func invalid(_ reason: String) -> TokenizerError { .invalidFile(path: source, reason: reason) }
        precondition(tokens.count == inModelVocabulary.count)
        guard tokens.count <= Int(Int32.max) else { throw invalid("vocabulary too large") }
        var modelIDs: [[UInt8]: Int32] = [:]
        modelIDs.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() where inModelVocabulary[id] {
            guard modelIDs.updateValue(Int32(id), forKey: Array(token.utf8)) == nil else {
                throw invalid("token \(JSONText.quote(token)) appears twice in the vocabulary")
            }
        }

        var table = PairTable(minimumCapacity: mergeStrings.count)
        var mergeIDs: [(Int32, Int32)] = []
        mergeIDs.reserveCapacity(mergeStrings.count)
        for (rank, (a, b)) in mergeStrings.enumerated() {
            guard let left = modelIDs[Array(a.utf8)], let right = modelIDs[Array(b.utf8)] else {
                throw invalid("merge \(rank) (\(JSONText.quote(a)) \(JSONText.quote(b))) uses a token that is not in the vocabulary")
            }
            guard let merged = modelIDs[Array((a + b).utf8)] else {
                throw invalid("merge \(rank) (\(JSONText.quote(a)) \(JSONText.quote(b))) makes \(JSONText.quote(a + b)), which is not in the vocabulary")
            }
            // A repeated pair keeps its last rank, as in Hugging Face.
            table.set(left, right, UInt64(rank) << 32 | UInt64(UInt32(merged)))
            mergeIDs.append((left, right))
        }

        var unknownID: Int32?
        if let unk = options.unknownToken {
            guard let id = modelIDs[Array(unk.utf8)] else { throw invalid("unk_token \(JSONText.quote(unk)) is not in the vocabulary") }
            unknownID = id
        }

        var special: [String: Int32] = [:]
        var addedByID: [Int32: AddedToken] = [:]
        for t in addedTokens {
            guard t.id >= 0, Int(t.id) < tokens.count, tokens[Int(t.id)] == t.content, !t.content.isEmpty else {
                throw invalid("added token \(JSONText.quote(t.content)) with id \(t.id) does not match the vocabulary")
            }
            addedByID[t.id] = t
            if t.special { special[t.content] = t.id }
        }
        for id in tokens.indices where !inModelVocabulary[id] && addedByID[Int32(id)] == nil {
            throw invalid("id \(id) is neither in the model's vocabulary nor an added token")
        }

        var offsets = [0]
        var arena: [UInt8] = []
        offsets.reserveCapacity(tokens.count + 1)
        for (id, token) in tokens.enumerated() {
            if addedByID[Int32(id)] != nil || !inModelVocabulary[id] {
                arena += Array(token.utf8)
            } else {
                arena += ByteLevel.decodedBytes(of: token)
            }
            offsets.append(arena.count)
        }

        self.tokens = tokens
        self.inModelVocabulary = inModelVocabulary
        self.merges = mergeIDs
        self.addedTokens = addedTokens
        self.options = options
        self.specialTokens = special
        self.byteIDs = (0..<256).map { modelIDs[Array(String(ByteLevel.characters[$0]).utf8)] ?? -1 }
        self.mergeTable = table
        self.byteOffsets = offsets
        self.byteArena = arena
        self.rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        self.normalizedMatcher = AddedTokenMatcher(addedTokens.filter { $0.normalized })
        self.unknownID = unknownID
        self.wholeTokenIDs = options.ignoreMerges
            ? modelIDs.filter { addedByID[$0.value] == nil }.reduce(into: [:]) { $0[ByteLevel.decodedBytes(of: tokens[Int($1.value)])] = $1.value }
            : [:]
    }

    // MARK: Decoding

    public func tokenBytes(_ id: Int32) -> [UInt8]? {
        guard id >= 0, Int(id) < tokens.count else { return nil }
        return Array(byteArena[byteOffsets[Int(id)]..<byteOffsets[Int(id) + 1]])
    }

    /// The bytes of `ids`, appended without a copy per token.
    public func decodeBytes(_ ids: [Int32]) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        try byteArena.withUnsafeBufferPointer { arena in
            for id in ids {
                guard id >= 0, Int(id) < tokens.count else {
                    throw TokenizerError.unknownID(id, vocabularySize: tokens.count)
                }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: arena[byteOffsets[Int(id)]..<byteOffsets[Int(id) + 1]]))
            }
        }
        return out
    }

    // MARK: Encoding

    public func encode(_ text: String) -> [Int32] {
        var text = text
        return text.withUTF8 { encode(buffer: $0) }
    }

    /// Ids for any bytes, valid UTF-8 or not; `decodeBytes` gives them back.
    public func encode(bytes: [UInt8]) -> [Int32] {
        bytes.withUnsafeBufferPointer { encode(buffer: $0) }
    }

    public func encode(buffer: UnsafeBufferPointer<UInt8>) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(buffer.count / 3 + 16)
        var state = EncoderState()
        encode(buffer, into: &out, state: &state)
        return out
    }

    /// The ids of each text, spread over `threads` threads (each keeps its own word cache).
    public func encodeBatch(_ texts: [String], threads: Int = 2) -> [[Int32]] {
        let workers = max(1, min(threads, texts.count))
        let parts = parallelMap(workers) { w -> [[Int32]] in
            var state = EncoderState()
            let range = (texts.count * w / workers)..<(texts.count * (w + 1) / workers)
            return texts[range].map { text in
                var text = text
                var out: [Int32] = []
                out.reserveCapacity(text.utf8.count / 3 + 16)
                text.withUTF8 { encode($0, into: &out, state: &state) }
                return out
            }
        }
        return parts.flatMap { $0 }
    }

    /// The same ids as `encode(_:)`, computed on `threads` threads over chunks of the text.
    /// Chunks end only after a newline that sits between two ASCII non-space bytes: the
    /// pre-tokenizer makes such a newline a piece of its own, so a cut there changes
    /// nothing. (Without such places, or with settings where a cut could matter, it
    /// encodes on one thread.)
    public func encode(_ text: String, threads: Int) -> [Int32] {
        var text = text
        return text.withUTF8 { buffer in
            let chunks = threads > 1 ? safeChunks(buffer, count: threads) : []
            if chunks.count < 2 { return encode(buffer: buffer) }
            let parts = parallelMap(chunks.count) { c -> [Int32] in
                var out: [Int32] = []
                out.reserveCapacity(chunks[c].count / 3 + 16)
                var state = EncoderState()
                encode(UnsafeBufferPointer(rebasing: buffer[chunks[c]]), into: &out, state: &state)
                return out
            }
            return Array(parts.joined())
        }
    }

    /// Up to `count` ranges covering `buffer`, cut where cutting cannot change the ids.
    private func safeChunks(_ buffer: UnsafeBufferPointer<UInt8>, count: Int) -> [Range<Int>] {
        guard !options.preTokenizer.addPrefixSpace, options.preTokenizer.useRegex,
              !rawMatcher.contains(byte: 0x0A), !normalizedMatcher.contains(byte: 0x0A) else { return [] }
        return PieceScanner.neutralChunks(buffer, count: count)
    }

    /// Per-call state: a cache of each distinct piece's ids and scratch buffers.
    struct EncoderState {
        var cache = ByteStringTable(minimumCapacity: 4096)
        var cachedIDs: [Int32] = []
        var symbols: [Int32] = []
        var ranks: [UInt64] = []
        var links: [Int32] = []
        var heap = MinHeap()
        var prefixed: [UInt8] = []
    }

    func encode(_ buffer: UnsafeBufferPointer<UInt8>, into out: inout [Int32], state: inout EncoderState) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        rawMatcher.split(base, 0..<buffer.count) { range, id in
            if let id {
                out.append(id)
                return
            }
            normalizedMatcher.split(base, range) { range, id in
                if let id {
                    out.append(id)
                } else {
                    encodeSegment(base, range, into: &out, state: &state)
                }
            }
        }
    }

    /// Text between added tokens: pre-tokenize, then encode each piece.
    private func encodeSegment(_ base: UnsafePointer<UInt8>, _ range: Range<Int>, into out: inout [Int32], state: inout EncoderState) {
        if options.preTokenizer.addPrefixSpace && base[range.lowerBound] != 0x20 {
            var prefixed = state.prefixed
            state.prefixed = []
            prefixed.removeAll(keepingCapacity: true)
            prefixed.append(0x20)
            prefixed.append(contentsOf: UnsafeBufferPointer(start: base + range.lowerBound, count: range.count))
            prefixed.withUnsafeBufferPointer { p in
                pieces(p.baseAddress!, 0..<p.count, into: &out, state: &state)
            }
            state.prefixed = prefixed
        } else {
            pieces(base, range, into: &out, state: &state)
        }
    }

    private func pieces(_ base: UnsafePointer<UInt8>, _ range: Range<Int>, into out: inout [Int32], state: inout EncoderState) {
        guard options.preTokenizer.useRegex else {
            encodePiece(base + range.lowerBound, range.count, into: &out, state: &state)
            return
        }
        var scanner = PieceScanner(base, from: range.lowerBound, to: range.upperBound)
        while let piece = scanner.next() {
            encodePiece(base + piece.lowerBound, piece.count, into: &out, state: &state)
        }
    }

    @inline(__always)
    private func encodePiece(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32], state: inout EncoderState) {
        if n == 1, case let id = byteIDs[Int(p[0])], id >= 0 {
            out.append(id)
            return
        }
        let hash = ByteStringTable.hash(p, n)
        if let packed = state.cache.value(p, n, hash: hash) {
            let start = Int(packed >> 32), count = Int(packed & 0xFFFF_FFFF)
            state.cachedIDs.withUnsafeBufferPointer { ids in
                out.append(contentsOf: UnsafeBufferPointer(rebasing: ids[start..<(start + count)]))
            }
            return
        }
        mergePiece(p, n, state: &state)
        let start = state.cachedIDs.count
        state.cachedIDs.append(contentsOf: state.symbols)
        state.cache.set(p, n, hash: hash, UInt64(start) << 32 | UInt64(state.symbols.count))
        out.append(contentsOf: state.symbols)
    }

    /// BPE on one piece: leaves its ids in `state.symbols`.
    private func mergePiece(_ p: UnsafePointer<UInt8>, _ n: Int, state: inout EncoderState) {
        state.symbols.removeAll(keepingCapacity: true)
        if !wholeTokenIDs.isEmpty, let id = wholeTokenIDs[Array(UnsafeBufferPointer(start: p, count: n))] {
            state.symbols.append(id)
            return
        }
        var lastWasUnknown = false
        for k in 0..<n {
            let id = byteIDs[Int(p[k])]
            if id >= 0 {
                state.symbols.append(id)
                lastWasUnknown = false
            } else if let unk = unknownID {
                if !(options.fuseUnknown && lastWasUnknown) { state.symbols.append(unk) }
                lastWasUnknown = true
            }
        }
        if state.symbols.count < 2 { return }
        if state.symbols.count <= 64 {
            mergeShort(&state)
        } else {
            mergeLong(&state)
        }
    }

    /// Quadratic but tight: rescan the pair ranks for the lowest (leftmost on ties).
    private func mergeShort(_ state: inout EncoderState) {
        var m = state.symbols.count
        if state.ranks.count < m { state.ranks = [UInt64](repeating: 0, count: max(m, 64)) }
        state.symbols.withUnsafeMutableBufferPointer { sym in
            state.ranks.withUnsafeMutableBufferPointer { pr in
                for k in 0..<(m - 1) { pr[k] = mergeTable.value(sym[k], sym[k + 1]) }
                while m > 1 {
                    var best = PairTable.missing
                    var at = -1
                    for k in 0..<(m - 1) where pr[k] < best {
                        best = pr[k]
                        at = k
                    }
                    if at < 0 { break }
                    sym[at] = Int32(truncatingIfNeeded: best)
                    var k = at + 1
                    while k + 1 < m {
                        sym[k] = sym[k + 1]
                        pr[k] = pr[k + 1]
                        k += 1
                    }
                    m -= 1
                    if at > 0 { pr[at - 1] = mergeTable.value(sym[at - 1], sym[at]) }
                    if at < m - 1 { pr[at] = mergeTable.value(sym[at], sym[at + 1]) }
                }
            }
        }
        state.symbols.removeLast(state.symbols.count - m)
    }

    /// For long pieces (runs of spaces, long "words"): a linked list of symbols and a
    /// min-heap of (rank, position), as Hugging Face does, so the work stays n log n.
    private func mergeLong(_ state: inout EncoderState) {
        let m = state.symbols.count
        state.links = [Int32](repeating: 0, count: 2 * m)
        state.heap.removeAll()
        var heap = state.heap
        state.heap = MinHeap()
        defer { state.heap = heap }

        state.symbols.withUnsafeMutableBufferPointer { sym in
            state.links.withUnsafeMutableBufferPointer { links in
                // links[2i] = previous symbol, links[2i + 1] = next symbol (-1: none); a merged-away
                // symbol gets sym = -1.
                for i in 0..<m {
                    links[2 * i] = Int32(i - 1)
                    links[2 * i + 1] = i + 1 < m ? Int32(i + 1) : -1
                }
                for i in 0..<(m - 1) {
                    let v = mergeTable.value(sym[i], sym[i + 1])
                    if v != PairTable.missing { heap.push(v & 0xFFFF_FFFF_0000_0000 | UInt64(i)) }
                }
                while let top = heap.pop() {
                    let pos = Int(top & 0xFFFF_FFFF), rank = top >> 32
                    let next = Int(links[2 * pos + 1])
                    if sym[pos] < 0 || next < 0 { continue }
                    let v = mergeTable.value(sym[pos], sym[next])
                    if v == PairTable.missing || v >> 32 != rank { continue }  // stale entry
                    sym[pos] = Int32(truncatingIfNeeded: v)
                    sym[next] = -1
                    let after = Int(links[2 * next + 1])
                    links[2 * pos + 1] = Int32(after)
                    if after >= 0 { links[2 * after] = Int32(pos) }
                    let before = Int(links[2 * pos])
                    if before >= 0 {
                        let w = mergeTable.value(sym[before], sym[pos])
                        if w != PairTable.missing { heap.push(w & 0xFFFF_FFFF_0000_0000 | UInt64(before)) }
                    }
                    if after >= 0 {
                        let w = mergeTable.value(sym[pos], sym[after])
                        if w != PairTable.missing { heap.push(w & 0xFFFF_FFFF_0000_0000 | UInt64(pos)) }
                    }
                }
            }
        }
        state.symbols.removeAll { $0 < 0 }
    }

    // MARK: Saving

    /// Writes `tokenizer.json`, and GPT-2's `vocab.json` and `merges.txt` beside it.
    public func save(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try AtomicFile.write(Data(huggingFaceJSON().utf8), to: directory.appendingPathComponent("tokenizer.json"))
        try AtomicFile.write(Data(vocabJSON().utf8), to: directory.appendingPathComponent("vocab.json"))
        try AtomicFile.write(Data(mergesText().utf8), to: directory.appendingPathComponent("merges.txt"))
    }
}
