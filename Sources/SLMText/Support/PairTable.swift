/// A hash map from a pair of non-negative 32-bit ids to a 64-bit value, by open
/// addressing over flat arrays: BPE looks pairs up millions of times, where a
/// `Dictionary` (with its per-key hasher) would dominate the profile.
struct PairTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]
    private var mask: Int
    private(set) var count = 0

    /// No key is ever all ones: ids are non-negative.
    private static let empty = UInt64.max
    /// What `value(_:_:)` returns for a missing pair.
    static let missing = UInt64.max

    init(minimumCapacity: Int = 16) {
        var capacity = 16
        while capacity < minimumCapacity * 2 { capacity <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: capacity)
        values = [UInt64](repeating: 0, count: capacity)
        mask = capacity - 1
    }

    @inline(__always)
    static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    @inline(__always)
    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        let h = key &* 0x9E37_79B9_7F4A_7C15
        return Int(truncatingIfNeeded: h ^ (h >> 31)) & mask
    }

    /// The value stored for (a, b), or `missing`.
    @inline(__always)
    func value(_ a: Int32, _ b: Int32) -> UInt64 {
        let k = Self.key(a, b)
        return keys.withUnsafeBufferPointer { keys in
            var i = Self.slot(k, mask)
            while true {
                let found = keys[i]
                if found == k { return values[i] }
                if found == Self.empty { return Self.missing }
                i = (i + 1) & mask
            }
        }
    }

    /// Stores `value` for (a, b), replacing any earlier one.
    mutating func set(_ a: Int32, _ b: Int32, _ value: UInt64) {
        let k = Self.key(a, b)
        let i = findOrClaim(k)
        values[i] = value
    }

    /// The value for (a, b); if absent, stores and returns `make()`.
    @inline(__always)
    mutating func value(_ a: Int32, _ b: Int32, orInsert make: () -> UInt64) -> UInt64 {
        let k = Self.key(a, b)
        var i = Self.slot(k, mask)
        while true {
            let found = keys[i]
            if found == k { return values[i] }
            if found == Self.empty { break }
            i = (i + 1) & mask
        }
        let v = make()
        if (count + 1) * 2 > keys.count {
            grow()
            let j = findOrClaim(k)
            values[j] = v
        } else {
            keys[i] = k
            values[i] = v
            count += 1
        }
        return v
    }

    /// The slot holding `k`, claiming an empty one (and growing) if it is new.
    private mutating func findOrClaim(_ k: UInt64) -> Int {
        if (count + 1) * 2 > keys.count { grow() }
        var i = Self.slot(k, mask)
        while true {
            let found = keys[i]
            if found == k { return i }
            if found == Self.empty {
                keys[i] = k
                count += 1
                return i
            }
            i = (i + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldValues = values
        keys = [UInt64](repeating: Self.empty, count: oldKeys.count * 2)
        values = [UInt64](repeating: 0, count: oldKeys.count * 2)
        mask = keys.count - 1
        for (k, v) in zip(oldKeys, oldValues) where k != Self.empty {
            var i = Self.slot(k, mask)
            while keys[i] != Self.empty { i = (i + 1) & mask }
            keys[i] = k
            values[i] = v
        }
    }
}
