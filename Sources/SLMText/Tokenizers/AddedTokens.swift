/// A token matched in the raw text before pre-tokenization, such as `<|endoftext|>`:
/// Hugging Face's "added tokens". Special ones are what `specialTokens` lists.
public struct AddedToken: Sendable, Equatable {
    public var id: Int32
    public var content: String
    public var special: Bool
    /// Whether it is matched after normalization. We have no normalizer, so this only
    /// decides the matching pass (as in Hugging Face: non-normalized tokens first).
    public var normalized: Bool

    public init(id: Int32, content: String, special: Bool = true, normalized: Bool = false) {
        self.id = id
        self.content = content
        self.special = special
        self.normalized = normalized
    }
}

/// Finds added tokens in bytes, leftmost first and the longest where several start at
/// the same place (Hugging Face's leftmost-longest matching).
struct AddedTokenMatcher: Sendable {
    /// Longest first, so the first match at a position is the longest.
    private let tokens: [(bytes: [UInt8], id: Int32)]
    /// Which bytes start some token: a quick test before comparing.
    private let firstBytes: [Bool]

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens.map { (Array($0.content.utf8), $0.id) }
            .filter { !$0.0.isEmpty }
            .sorted { $0.0.count > $1.0.count }
        var first = [Bool](repeating: false, count: 256)
        for t in self.tokens { first[Int(t.bytes[0])] = true }
        firstBytes = first
    }

    var isEmpty: Bool { tokens.isEmpty }

    /// Calls `body` for the pieces of `base[range]` in order: each token found (with its
    /// id) and the text between them (with nil).
    @inline(__always)
    func split(_ base: UnsafePointer<UInt8>, _ range: Range<Int>, _ body: (Range<Int>, Int32?) -> Void) {
        if tokens.isEmpty {
            body(range, nil)
            return
        }
        let end = range.upperBound
        var segmentStart = range.lowerBound
        var i = segmentStart
        while i < end {
            if firstBytes[Int(base[i])], let (length, id) = match(base, at: i, end: end) {
                if segmentStart < i { body(segmentStart..<i, nil) }
                body(i..<(i + length), id)
                i += length
                segmentStart = i
            } else {
                i += 1
            }
        }
        if segmentStart < end { body(segmentStart..<end, nil) }
    }

    private func match(_ base: UnsafePointer<UInt8>, at i: Int, end: Int) -> (Int, Int32)? {
        for t in tokens where t.bytes.count <= end - i && t.bytes[0] == base[i] {
            let matched = t.bytes.withUnsafeBufferPointer { tb in
                var k = 1
                while k < tb.count, tb[k] == base[i + k] { k += 1 }
                return k == tb.count
            }
            if matched { return (t.bytes.count, t.id) }
        }
        return nil
    }

    /// Whether some token contains `byte`.
    func contains(byte: UInt8) -> Bool { tokens.contains { $0.bytes.contains(byte) } }
}
