/// Cuts a normalised paragraph into sentence-aware chunks of at most `maxLength`
/// characters, keeping whole sentences together where they fit and breaking over-long
/// sentences at word boundaries. Pieces shorter than `minLength` join their neighbour
/// when they fit, and are dropped (and counted) when they do not.
public struct Chunker: Sendable {
    public var minLength: Int
    public var maxLength: Int

    public init(minLength: Int = 40, maxLength: Int = 256) {
        self.minLength = minLength
        self.maxLength = maxLength
    }

    /// The chunks of `paragraph`, and how many characters fell into pieces too short to keep.
    public func chunks(_ paragraph: String) -> (chunks: [String], droppedCharacters: Int) {
        var out: [String] = [], current = "", dropped = 0
        func flush() {
            guard !current.isEmpty else { return }
            if current.count >= minLength {
                out.append(current)
            } else if let last = out.last, last.count + 1 + current.count <= maxLength {
                out[out.count - 1] = last + " " + current
            } else {
                dropped += current.count
            }
            current = ""
        }
        for sentence in Chunker.sentences(paragraph) {
            for piece in pieces(of: sentence) {
                if current.isEmpty {
                    current = String(piece)
                } else if current.count + 1 + piece.count <= maxLength {
                    current += " " + piece
                } else {
                    flush()
                    current = String(piece)
                }
            }
        }
        flush()
        return (out, dropped)
    }

    /// A sentence longer than `maxLength`, split at the last space that fits.
    private func pieces(of sentence: Substring) -> [Substring] {
        var rest = sentence, out: [Substring] = []
        while rest.count > maxLength {
            let limit = rest.index(rest.startIndex, offsetBy: maxLength)
            let cut = rest[..<limit].lastIndex(of: " ") ?? limit
            out.append(rest[..<cut])
            rest = rest[cut...].drop { $0 == " " }
        }
        if !rest.isEmpty { out.append(rest) }
        return out
    }

    /// Sentences end after . ! or ? (and any closing quotes or brackets) before a space.
    static func sentences(_ text: String) -> [Substring] {
        var out: [Substring] = []
        var start = text.startIndex, i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == "." || c == "!" || c == "?" {
                var j = text.index(after: i)
                while j < text.endIndex, "\"')]".contains(text[j]) { j = text.index(after: j) }
                if j == text.endIndex || text[j] == " " {
                    out.append(text[start..<j])
                    while j < text.endIndex, text[j] == " " { j = text.index(after: j) }
                    start = j
                    i = j
                    continue
                }
            }
            i = text.index(after: i)
        }
        if start < text.endIndex { out.append(text[start...]) }
        return out
    }
}
