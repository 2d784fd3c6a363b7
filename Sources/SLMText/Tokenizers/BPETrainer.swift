import Foundation

/// Learns a byte-level BPE tokenizer from text, as Hugging Face's `BpeTrainer` does for
/// `ByteLevelBPETokenizer`: ids are the special tokens, then the 256 byte tokens (ordered
/// by their characters' code points), then one per merge; each step merges the most
/// frequent adjacent pair (ties: the smaller left id, then the smaller right id), and
/// training stops at the vocabulary size or when no pair occurs `minFrequency` times.
///
/// Files are read line by line (each line, with its newline, is pre-tokenized on its own,
/// as `tokenizers` does); each string given to `train(texts:)` is one sequence. Unlike
/// `tokenizers`, special tokens found in the training text are cut out before counting,
/// so no merge is spent on pieces of `<|endoftext|>`.
///
/// The work: pre-tokenize and count distinct words (in parallel over chunks), then keep
/// pair counts up to date incrementally, with a max-heap of pairs (stale entries are
/// re-queued when popped) and, per pair, the words it occurs in.
public struct BPETrainer: Sendable {
    public var vocabularySize: Int
    public var specialTokens: [String]
    public var minFrequency: Int
    public var threads: Int

    public enum Progress: Sendable {
        /// Distinct words of two or more bytes, and all words, counted in the input.
        case counted(distinctWords: Int, words: Int, bytes: Int)
        case merged(Int, target: Int)
    }

    public init(vocabularySize: Int, specialTokens: [String] = [], minFrequency: Int = 2, threads: Int = 2) {
        self.vocabularySize = vocabularySize
        self.specialTokens = specialTokens
        self.minFrequency = minFrequency
        self.threads = threads
    }

    public static func train(texts: [String], vocabularySize: Int, specialTokens: [String] = []) throws -> ByteLevelBPETokenizer {
        try BPETrainer(vocabularySize: vocabularySize, specialTokens: specialTokens).train(texts: texts)
    }

    public static func train(files: [URL], vocabularySize: Int, specialTokens: [String] = []) throws -> ByteLevelBPETokenizer {
        try BPETrainer(vocabularySize: vocabularySize, specialTokens: specialTokens).train(files: files)
    }

    /// Special tokens in order, without repeats or empty strings.
    private var specials: [String] {
        var seen = Set<String>()
        return specialTokens.filter { !$0.isEmpty && seen.insert($0).inserted }
    }

    private func checkSize() throws {
        let minimum = specials.count + 256
        guard vocabularySize >= minimum else { throw TokenizerError.vocabularyTooSmall(requested: vocabularySize, minimum: minimum) }
    }

    public func train(texts: [String], progress: ((Progress) -> Void)? = nil) throws -> ByteLevelBPETokenizer {
        try checkSize()
        let matcher = AddedTokenMatcher(specials.enumerated().map { AddedToken(id: Int32($0.offset), content: $0.element) })
        var counts: WordCounts
        if texts.count == 1 {
            var text = texts[0]
            counts = text.withUTF8 { buffer in
                // One long sequence: cut only where cutting leaves the pieces unchanged.
                let chunks = matcher.contains(byte: 0x0A) ? [0..<buffer.count] : PieceScanner.neutralChunks(buffer, count: threads)
                return WordCounts.merged(parallelMap(chunks.count) { c in
                    var counts = WordCounts()
                    counts.add(UnsafeBufferPointer(rebasing: buffer[chunks[c]]), matcher: matcher)
                    return counts
                })
            }
        } else {
            let workers = max(1, min(threads, texts.count))
            counts = WordCounts.merged(parallelMap(workers) { w in
                var counts = WordCounts()
                for var text in texts[(texts.count * w / workers)..<(texts.count * (w + 1) / workers)] {
                    text.withUTF8 { counts.add($0, matcher: matcher) }
                }
                return counts
            })
        }
        return try learn(counts, progress: progress)
    }

    public func train(files: [URL], progress: ((Progress) -> Void)? = nil) throws -> ByteLevelBPETokenizer {
        try checkSize()
        let matcher = AddedTokenMatcher(specials.enumerated().map { AddedToken(id: Int32($0.offset), content: $0.element) })
        var parts: [WordCounts] = []
        for file in files {
            let data = try Data(contentsOf: file)
            let counted: [WordCounts] = data.withUnsafeBytes { raw in
                let buffer = raw.bindMemory(to: UInt8.self)
                let chunks = Self.lineChunks(buffer, count: threads)
                return parallelMap(chunks.count) { c in
                    var counts = WordCounts()
                    counts.addLines(UnsafeBufferPointer(rebasing: buffer[chunks[c]]), matcher: matcher)
                    return counts
                }
            }
            parts += counted
        }
        return try learn(WordCounts.merged(parts), progress: progress)
    }

    /// Up to `count` ranges covering `buffer`, each ending after a newline (or at the end).
    static func lineChunks(_ buffer: UnsafeBufferPointer<UInt8>, count: Int) -> [Range<Int>] {
        guard count > 1, buffer.count >= 1 << 16 else { return [0..<buffer.count] }
        var cuts = [0]
        for c in 1..<count {
            var p = max(buffer.count * c / count, cuts.last! + 1)
            while p < buffer.count, buffer[p - 1] != 0x0A { p += 1 }
            if p >= buffer.count { break }
            cuts.append(p)
        }
        cuts.append(buffer.count)
        return zip(cuts, cuts.dropFirst()).map { $0..<$1 }
    }

    private func learn(_ counts: WordCounts, progress: ((Progress) -> Void)?) throws -> ByteLevelBPETokenizer {
        progress?(.counted(distinctWords: counts.table.count, words: counts.words, bytes: counts.bytes))
        var learner = MergeLearner(counts: counts.table, specials: specials)
        learner.run(vocabularySize: vocabularySize, minFrequency: max(1, minFrequency), progress: progress)
        let tokens = learner.tokenStrings
        return try ByteLevelBPETokenizer(
            tokens: tokens, inModelVocabulary: [Bool](repeating: true, count: tokens.count),
            merges: learner.merges.map { (tokens[Int($0.0)], tokens[Int($0.1)]) },
            addedTokens: specials.enumerated().map { AddedToken(id: Int32($0.offset), content: $0.element) },
            options: .init(), source: "trainer")
    }
}

/// Distinct pre-tokenized words (two bytes or more; single bytes never merge) and counts.
struct WordCounts {
    var table = ByteStringTable(minimumCapacity: 1 << 14)
    var words = 0
    var bytes = 0

    /// Counts the words of one sequence.
    mutating func add(_ buffer: UnsafeBufferPointer<UInt8>, matcher: AddedTokenMatcher) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        bytes += buffer.count
        add(base, 0..<buffer.count, matcher: matcher)
    }

    /// Counts the words of each line (newline included) as a sequence of its own.
    mutating func addLines(_ buffer: UnsafeBufferPointer<UInt8>, matcher: AddedTokenMatcher) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        bytes += buffer.count
        var start = 0
        while start < buffer.count {
            let end: Int
            if let nl = memchr(base + start, 0x0A, buffer.count - start) {
                end = base.distance(to: nl.assumingMemoryBound(to: UInt8.self)) + 1
            } else {
                end = buffer.count
            }
            add(base, start..<end, matcher: matcher)
            start = end
        }
    }

    private mutating func add(_ base: UnsafePointer<UInt8>, _ range: Range<Int>, matcher: AddedTokenMatcher) {
        matcher.split(base, range) { range, special in
            guard special == nil else { return }
            var scanner = PieceScanner(base, from: range.lowerBound, to: range.upperBound)
            while let piece = scanner.next() {
                words += 1
                if piece.count > 1 {
                    let p = base + piece.lowerBound
                    table.add(p, piece.count, hash: ByteStringTable.hash(p, piece.count), 1)
                }
            }
        }
    }

    static func merged(_ parts: [WordCounts]) -> WordCounts {
        guard var total = parts.max(by: { $0.table.count < $1.table.count }) else { return WordCounts() }
        let largest = parts.firstIndex { $0.table.count == total.table.count }!
        for (i, part) in parts.enumerated() where i != largest {
            total.table.addAll(part.table)
            total.words += part.words
            total.bytes += part.bytes
        }
        return total
    }
}

/// The merge loop over distinct words, all ids and flat arrays.
private struct MergeLearner {
    // Token id → bytes (specials: their UTF-8) and the lookup by vocabulary string.
    private var tokenBytes: [[UInt8]] = []
    private var idOfString: [[UInt8]: Int32] = [:]
    private var specialCount: Int

    // Words: symbols of word w are symbols[wordStart[w] ..< wordStart[w] + wordLength[w]],
    // rewritten in place as merges shorten them.
    private var symbols: [Int32] = []
    private var wordStart: [Int] = []
    private var wordLength: [Int32] = []
    private var wordCount: [Int] = []
    private var wordStamp: [Int32] = []

    // Pairs, by index: ids, current count, and the words they (may) occur in as a linked
    // list of nodes; a word can be listed twice or no longer hold the pair, which the
    // merge step tolerates.
    private var pairIndex = PairTable(minimumCapacity: 1 << 16)
    private var pairLeft: [Int32] = []
    private var pairRight: [Int32] = []
    private var pairCount: [Int] = []
    private var pairHead: [Int32] = []
    private var pairLastWord: [Int32] = []
    private var pairTouched: [Int32] = []
    private var nodeWord: [Int32] = []
    private var nodeNext: [Int32] = []

    private var heap = PairHeap()
    private var touched: [Int32] = []
    private var step: Int32 = 0
    private(set) var merges: [(Int32, Int32)] = []

    init(counts: ByteStringTable, specials: [String]) {
        specialCount = specials.count
        for s in specials { addToken(key: Array(s.utf8), bytes: Array(s.utf8)) }
        var idOfByte = [Int32](repeating: -1, count: 256)
        for b in ByteLevel.alphabetOrder {
            let key = Array(String(ByteLevel.characters[Int(b)]).utf8)
            idOfByte[Int(b)] = idOfString[key] ?? addToken(key: key, bytes: [b])
        }

        counts.arena.withUnsafeBufferPointer { arena in
            counts.forEach { range, count in
                wordStart.append(symbols.count)
                wordLength.append(Int32(range.count))
                wordCount.append(Int(count))
                for k in range { symbols.append(idOfByte[Int(arena[k])]) }
            }
        }
        wordStamp = [Int32](repeating: 0, count: wordCount.count)

        for w in wordCount.indices {
            let start = wordStart[w], c = wordCount[w]
            for k in start..<(start + Int(wordLength[w]) - 1) {
                let p = pair(symbols[k], symbols[k + 1])
                pairCount[p] += c
                if pairLastWord[p] != Int32(w) { link(p, Int32(w)) }
            }
        }
        heap.build((0..<pairCount.count).map { PairHeap.Entry(count: pairCount[$0], left: pairLeft[$0], right: pairRight[$0], pair: Int32($0)) })
    }

    /// Vocabulary strings by id.
    var tokenStrings: [String] {
        tokenBytes.enumerated().map { $0.offset < specialCount ? String(decoding: $0.element, as: UTF8.self) : ByteLevel.string(of: $0.element) }
    }

    @discardableResult
    private mutating func addToken(key: [UInt8], bytes: [UInt8]) -> Int32 {
        let id = Int32(tokenBytes.count)
        tokenBytes.append(bytes)
        idOfString[key] = id
        return id
    }

    /// The index of pair (a, b), created with count 0 if new.
    @inline(__always)
    private mutating func pair(_ a: Int32, _ b: Int32) -> Int {
        let next = UInt64(pairCount.count)
        let p = Int(pairIndex.value(a, b) { next })
        if p == pairCount.count {
            pairLeft.append(a)
            pairRight.append(b)
            pairCount.append(0)
            pairHead.append(-1)
            pairLastWord.append(-1)
            pairTouched.append(-1)
        }
        return p
    }

    @inline(__always)
    private mutating func link(_ p: Int, _ w: Int32) {
        nodeWord.append(w)
        nodeNext.append(pairHead[p])
        pairHead[p] = Int32(nodeWord.count - 1)
        pairLastWord[p] = w
    }

    mutating func run(vocabularySize: Int, minFrequency: Int, progress: ((BPETrainer.Progress) -> Void)?) {
        let target = vocabularySize - tokenBytes.count
        while tokenBytes.count < vocabularySize, let top = heap.pop() {
            let p = Int(top.pair)
            if top.count != pairCount[p] {
                // Stale: the count changed since this entry was queued.
                if pairCount[p] > 0 { heap.push(.init(count: pairCount[p], left: top.left, right: top.right, pair: top.pair)) }
                continue
            }
            if top.count < minFrequency { break }
            let a = top.left, b = top.right
            let bytes = tokenBytes[Int(a)] + tokenBytes[Int(b)]
            let key = Array(ByteLevel.string(of: bytes).utf8)
            let merged = idOfString[key] ?? addToken(key: key, bytes: bytes)
            merges.append((a, b))
            step += 1

            var node = pairHead[p]
            while node >= 0 {
                let w = Int(nodeWord[Int(node)])
                node = nodeNext[Int(node)]
                if wordStamp[w] == step { continue }
                wordStamp[w] = step
                apply(a, b, merged, to: w)
            }
            pairCount[p] = 0
            pairHead[p] = -1
            for q in touched where pairCount[Int(q)] > 0 {
                heap.push(.init(count: pairCount[Int(q)], left: pairLeft[Int(q)], right: pairRight[Int(q)], pair: q))
            }
            touched.removeAll(keepingCapacity: true)
            if merges.count % 200 == 0 { progress?(.merged(merges.count, target: target)) }
        }
        progress?(.merged(merges.count, target: target))
    }

    /// Merges every (a, b) in word w into `merged`, updating the counts of the pairs around.
    private mutating func apply(_ a: Int32, _ b: Int32, _ merged: Int32, to w: Int) {
        let start = wordStart[w], length = Int(wordLength[w]), c = wordCount[w]
        var out = start, i = start
        let end = start + length
        while i < end {
            if i + 1 < end, symbols[i] == a, symbols[i + 1] == b {
                if out > start {
                    let before = symbols[out - 1]
                    change(before, a, -c, w)
                    change(before, merged, c, w)
                }
                if i + 2 < end {
                    let after = symbols[i + 2]
                    change(b, after, -c, w)
                    change(merged, after, c, w)
                }
                symbols[out] = merged
                i += 2
            } else {
                symbols[out] = symbols[i]
                i += 1
            }
            out += 1
        }
        wordLength[w] = Int32(out - start)
    }

    @inline(__always)
    private mutating func change(_ x: Int32, _ y: Int32, _ delta: Int, _ w: Int) {
        let q = pair(x, y)
        pairCount[q] += delta
        if delta > 0 {
            if pairLastWord[q] != Int32(w) { link(q, Int32(w)) }
            if pairTouched[q] != step {
                pairTouched[q] = step
                touched.append(Int32(q))
            }
        }
    }
}

/// A binary max-heap of pairs by count, ties going to the smaller (left, right) ids.
private struct PairHeap {
    struct Entry {
        var count: Int
        var left: Int32
        var right: Int32
        var pair: Int32

        @inline(__always)
        func outranks(_ o: Entry) -> Bool {
            if count != o.count { return count > o.count }
            if left != o.left { return left < o.left }
            return right < o.right
        }
    }

    private var items: [Entry] = []

    mutating func build(_ entries: [Entry]) {
        items = entries.filter { $0.count > 0 }
        var i = items.count / 2
        while i > 0 {
            i -= 1
            siftDown(i)
        }
    }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].outranks(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        siftDown(0)
        return top
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        let n = items.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < n, items[l].outranks(items[best]) { best = l }
            if r < n, items[r].outranks(items[best]) { best = r }
            if best == i { return }
            items.swapAt(i, best)
            i = best
        }
    }
}
