/// Turns the bytes of generated tokens into text that is safe to show as it arrives.
///
/// - A byte-level token can end in the middle of a UTF-8 character; those bytes wait until
///   the character is complete.
/// - Text that could still grow into a stop string is held back. Once a stop string
///   appears, everything before it is released and generation should stop. At the end,
///   held text that never became a stop string is released.
public struct TextStream: Sendable {
    public let stops: [String]
    private var pendingBytes: [UInt8] = []
    private var held = ""
    public private(set) var stopped = false
    /// All text released so far.
    public private(set) var text = ""

    public init(stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Adds a token's bytes; returns the text that may be shown now ("" if none).
    public mutating func push(_ bytes: [UInt8]) -> String {
        guard !stopped else { return "" }
        pendingBytes += bytes
        let complete = TextStream.completePrefixLength(pendingBytes)
        guard complete > 0 else { return "" }
        held += String(decoding: pendingBytes[..<complete], as: UTF8.self)
        pendingBytes.removeFirst(complete)
        return release()
    }

    /// Ends the stream: releases held text (and bytes that never completed a character,
    /// as U+FFFD). Nothing is released after a stop string.
    public mutating func finish() -> String {
        guard !stopped else { return "" }
        held += String(decoding: pendingBytes, as: UTF8.self)
        pendingBytes.removeAll()
        let out = release()
        guard !stopped else { return out }
        text += held
        defer { held = "" }
        return out + held
    }

    private mutating func release() -> String {
        // A complete stop string: release what precedes it and stop.
        if let cut = stops.compactMap({ held.range(of: $0)?.lowerBound }).min() {
            let out = String(held[..<cut])
            text += out
            held = ""
            stopped = true
            return out
        }
        // Hold back the longest suffix that is a prefix of some stop string.
        var keep = 0
        for stop in stops {
            for n in stride(from: min(stop.count - 1, held.count), to: 0, by: -1) where held.hasSuffix(stop.prefix(n)) {
                keep = max(keep, n)
                break
            }
        }
        let cut = held.index(held.endIndex, offsetBy: -keep)
        let out = String(held[..<cut])
        held = String(held[cut...])
        text += out
        return out
    }

    /// Length of the longest prefix of `bytes` that ends on a character boundary.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        // Only the last three bytes can belong to an unfinished character.
        var i = bytes.count - 1
        let floor = max(0, bytes.count - 4)
        while i >= floor {
            let b = bytes[i]
            if b & 0xC0 != 0x80 {  // a lead byte (or ASCII): is its character complete?
                let need = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1
                return bytes.count - i >= need ? bytes.count : i
            }
            i -= 1
        }
        return bytes.count  // only continuation bytes: invalid, let the decoder replace them
    }
}
