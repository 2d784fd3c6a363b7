#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A hash map from short byte strings (pre-tokenized words) to a 64-bit value, by open
/// addressing; keys are copied into one byte arena. It counts words for training and
/// caches each word's ids when encoding, without allocating a `[UInt8]` or `String` per
/// lookup.
struct ByteStringTable {
    private struct Slot {
        var hash: UInt32
        var length: Int32  // -1: empty
        var start: Int
        var value: UInt64
    }

    private var slots: [Slot]
    private var mask: Int
    private(set) var arena: [UInt8] = []
    private(set) var count = 0

    init(minimumCapacity: Int = 1024) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        slots = [Slot](repeating: Slot(hash: 0, length: -1, start: 0, value: 0), count: capacity)
        mask = capacity - 1
    }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt32 {
        var h = UInt64(truncatingIfNeeded: n) &* 0x9E37_79B9_7F4A_7C15
        var i = 0
        let raw = UnsafeRawPointer(p)
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
            i += 8
        }
        if i < n {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                tail |= UInt64(p[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        }
        h ^= h >> 32
        h = h &* 0xD6E8_FEB8_6659_FD93
        return UInt32(truncatingIfNeeded: h >> 32)
    }

    /// The value for the key `p[0..<n]`, or nil.
    @inline(__always)
    func value(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt32) -> UInt64? {
        slots.withUnsafeBufferPointer { slots in
            arena.withUnsafeBufferPointer { arena in
                var i = Int(h) & mask
                while true {
                    let s = slots[i]
                    if s.length < 0 { return nil }
                    if s.hash == h, Int(s.length) == n, memcmp(arena.baseAddress! + s.start, p, n) == 0 { return s.value }
                    i = (i + 1) & mask
                }
            }
        }
    }

    /// Adds `amount` to the value for the key (starting from 0 for a new key).
    @inline(__always)
    mutating func add(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt32, _ amount: UInt64) {
        let i = slotIndex(p, n, hash: h)
        slots[i].value &+= amount
    }

    /// Stores `value` for the key, replacing any earlier one.
    mutating func set(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt32, _ value: UInt64) {
        let i = slotIndex(p, n, hash: h)
        slots[i].value = value
    }

    /// The slot of the key, inserted with value 0 if new.
    @inline(__always)
    private mutating func slotIndex(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt32) -> Int {
        var i = Int(h) & mask
        let found: Int? = slots.withUnsafeBufferPointer { slots in
            arena.withUnsafeBufferPointer { arena in
                while true {
                    let s = slots[i]
                    if s.length < 0 { return nil }
                    if s.hash == h, Int(s.length) == n, memcmp(arena.baseAddress! + s.start, p, n) == 0 { return i }
                    i = (i + 1) & mask
                }
            }
        }
        if let found { return found }
        if (count + 1) * 2 > slots.count {
            grow()
            i = Int(h) & mask
            while slots[i].length >= 0 { i = (i + 1) & mask }
        }
        let start = arena.count
        arena.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        slots[i] = Slot(hash: h, length: Int32(n), start: start, value: 0)
        count += 1
        return i
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(hash: 0, length: -1, start: 0, value: 0), count: old.count * 2)
        mask = slots.count - 1
        for s in old where s.length >= 0 {
            var i = Int(s.hash) & mask
            while slots[i].length >= 0 { i = (i + 1) & mask }
            slots[i] = s
        }
    }

    /// Calls `body` with each key (as a range of `arena`) and its value, in insertion order
    /// of their arena position.
    func forEach(_ body: (Range<Int>, UInt64) -> Void) {
        var entries: [(start: Int, length: Int, value: UInt64)] = []
        entries.reserveCapacity(count)
        for s in slots where s.length >= 0 { entries.append((s.start, Int(s.length), s.value)) }
        entries.sort { $0.start < $1.start }
        for e in entries { body(e.start..<(e.start + e.length), e.value) }
    }

    /// Adds every count of `other` into this table.
    mutating func addAll(_ other: ByteStringTable) {
        other.arena.withUnsafeBufferPointer { otherArena in
            for s in other.slots where s.length >= 0 {
                add(otherArena.baseAddress! + s.start, Int(s.length), hash: s.hash, s.value)
            }
        }
    }
}
