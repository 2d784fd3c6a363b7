/// Splits UTF-8 bytes into the pieces GPT-2's pre-tokenizer regex would match,
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// (what Hugging Face's `ByteLevel` pre-tokenizer applies with `use_regex: true`),
/// written out as a scanner so that no regex engine runs per byte. `\s` is Unicode
/// White_Space, `\p{L}` and `\p{N}` the letter and number categories. Bytes that are not
/// valid UTF-8 count, one by one, as symbols (neither letter, number nor space), so any
/// byte string splits into pieces that concatenate back to it.
struct PieceScanner {
    private let base: UnsafePointer<UInt8>
    private let end: Int
    private var position: Int

    /// Scans `base[start..<end]`.
    init(_ base: UnsafePointer<UInt8>, from start: Int, to end: Int) {
        self.base = base
        self.end = end
        self.position = start
    }

    /// Up to `count` ranges covering `buffer` (none if it is under 64 KiB), cut only after
    /// a newline that sits between two ASCII non-space bytes. Such a newline is a piece of
    /// its own whether or not the text is cut there, so the pieces of the chunks are the
    /// pieces of the whole: chunks can be pre-tokenized in parallel.
    static func neutralChunks(_ buffer: UnsafeBufferPointer<UInt8>, count: Int) -> [Range<Int>] {
        guard count > 1, buffer.count >= 1 << 16 else { return [0..<buffer.count] }
        func solid(_ b: UInt8) -> Bool { b < 0x80 && asciiClass(b) != space }
        var cuts = [0]
        for c in 1..<count {
            var p = max(buffer.count * c / count, cuts.last! + 2)
            while p < buffer.count, !(buffer[p - 1] == 0x0A && solid(buffer[p - 2]) && solid(buffer[p])) { p += 1 }
            if p >= buffer.count { break }
            cuts.append(p)
        }
        cuts.append(buffer.count)
        return zip(cuts, cuts.dropFirst()).map { $0..<$1 }
    }

    // Character classes.
    static let other: UInt8 = 0, letter: UInt8 = 1, number: UInt8 = 2, space: UInt8 = 3

    /// The next piece as a byte range, or nil at the end.
    @inline(__always)
    mutating func next() -> Range<Int>? {
        let i = position
        guard i < end else { return nil }
        let b = base[i]
        let j: Int
        if b == UInt8(ascii: "'"), let n = contraction(at: i) {
            j = i + n
        } else {
            let (c0, l0) = unit(at: i)
            if c0 != Self.space {
                j = run(of: c0, from: i + l0)
            } else if b == UInt8(ascii: " "), i + 1 < end, case let (c1, l1) = unit(at: i + 1), c1 != Self.space {
                // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: one ASCII space joins the run after it.
                j = run(of: c1, from: i + 1 + l1)
            } else {
                // `\s+(?!\S)` backtracks so that a run followed by a non-space leaves its last
                // character to the next piece (where a space prefixes the word); `\s+` takes
                // a lone one.
                var k = i + l0
                var last = i
                while k < end {
                    let (c, l) = unit(at: k)
                    if c != Self.space { break }
                    last = k
                    k += l
                }
                j = (k == end || last == i) ? k : last
            }
        }
        position = j
        return i..<j
    }

    /// Length of `'s`, `'t`, `'re`, `'ve`, `'m`, `'ll` or `'d` at `i` (case-sensitive), if any.
    @inline(__always)
    private func contraction(at i: Int) -> Int? {
        guard i + 1 < end else { return nil }
        switch base[i + 1] {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
            return 2
        case UInt8(ascii: "r"), UInt8(ascii: "v"):
            return i + 2 < end && base[i + 2] == UInt8(ascii: "e") ? 3 : nil
        case UInt8(ascii: "l"):
            return i + 2 < end && base[i + 2] == UInt8(ascii: "l") ? 3 : nil
        default:
            return nil
        }
    }

    /// End of the run of characters of class `cls` starting at `k`.
    @inline(__always)
    private func run(of cls: UInt8, from k: Int) -> Int {
        var k = k
        if cls == Self.letter {
            // ASCII letters are most of the text: a tight loop for them.
            while k < end, (base[k] | 0x20) &- UInt8(ascii: "a") < 26 { k += 1 }
        }
        while k < end {
            let (c, l) = unit(at: k)
            if c != cls { break }
            k += l
        }
        return k
    }

    /// Class and byte length of the character at `i`; an invalid UTF-8 byte is a symbol of length 1.
    @inline(__always)
    private func unit(at i: Int) -> (UInt8, Int) {
        let b0 = base[i]
        if b0 < 0x80 { return (Self.asciiClass(b0), 1) }
        let avail = end - i
        if b0 >= 0xC2 && b0 <= 0xDF {
            guard avail >= 2, case let b1 = base[i + 1], b1 & 0xC0 == 0x80 else { return (Self.other, 1) }
            return (Self.smallClasses[Int(b0 & 0x1F) << 6 | Int(b1 & 0x3F)], 2)
        }
        if b0 >= 0xE0 && b0 <= 0xEF {
            guard avail >= 3 else { return (Self.other, 1) }
            let b1 = base[i + 1], b2 = base[i + 2]
            let lo: UInt8 = b0 == 0xE0 ? 0xA0 : 0x80, hi: UInt8 = b0 == 0xED ? 0x9F : 0xBF
            guard b1 >= lo && b1 <= hi, b2 & 0xC0 == 0x80 else { return (Self.other, 1) }
            let v = UInt32(b0 & 0x0F) << 12 | UInt32(b1 & 0x3F) << 6 | UInt32(b2 & 0x3F)
            return (Self.classify(v), 3)
        }
        if b0 >= 0xF0 && b0 <= 0xF4 {
            guard avail >= 4 else { return (Self.other, 1) }
            let b1 = base[i + 1], b2 = base[i + 2], b3 = base[i + 3]
            let lo: UInt8 = b0 == 0xF0 ? 0x90 : 0x80, hi: UInt8 = b0 == 0xF4 ? 0x8F : 0xBF
            guard b1 >= lo && b1 <= hi, b2 & 0xC0 == 0x80, b3 & 0xC0 == 0x80 else { return (Self.other, 1) }
            let v = UInt32(b0 & 0x07) << 18 | UInt32(b1 & 0x3F) << 12 | UInt32(b2 & 0x3F) << 6 | UInt32(b3 & 0x3F)
            return (Self.classify(v), 4)
        }
        return (Self.other, 1)
    }

    @inline(__always)
    static func asciiClass(_ b: UInt8) -> UInt8 {
        if (b | 0x20) &- UInt8(ascii: "a") < 26 { return letter }
        if b &- UInt8(ascii: "0") < 10 { return number }
        if b == 0x20 || b &- 0x09 < 5 { return space }
        return other
    }

    /// Classes of U+0000..U+07FF (Latin, Greek, Cyrillic, Hebrew, Arabic…), looked up
    /// rather than asked of the Unicode tables each time.
    static let smallClasses: [UInt8] = (0..<0x800).map { classifyUncached(UInt32($0)) }

    @inline(__always)
    static func classify(_ v: UInt32) -> UInt8 {
        // CJK ideographs and Hangul syllables: all letters, and common enough to skip the tables.
        if (0x4E00...0x9FFF).contains(v) || (0xAC00...0xD7A3).contains(v) { return letter }
        return classifyUncached(v)
    }

    static func classifyUncached(_ v: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(v) else { return other }
        let p = scalar.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return other
        }
    }
}
