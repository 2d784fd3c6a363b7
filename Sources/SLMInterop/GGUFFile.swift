import Foundation
import SLMModels

/// GGUF version 3, llama.cpp's model file, written from scratch:
///
///     "GGUF" · version u32 · tensor count u64 · metadata count u64
///     metadata: key (u64 length + UTF-8) · value type u32 · value
///     tensor infos: name · dimension count u32 · dimensions u64 (innermost first) · type u32 · offset u64
///     padding to `alignment`, then each tensor's data at its offset (a multiple of `alignment`)
///
/// All numbers little-endian. A tensor of row-major shape [a, b] is written with
/// dimensions [b, a], as ggml counts from the innermost axis.
public struct GGUFFile {
    public enum TensorType: UInt32, Sendable {
        case f32 = 0
        case f16 = 1
        case q8_0 = 8
        case tq2_0 = 35

        /// Bytes for `count` values.
        func byteCount(_ count: Int) -> Int {
            switch self {
            case .f32: count * 4
            case .f16: count * 2
            case .q8_0: count / GGUFEncoding.q8Block * GGUFEncoding.q8BlockBytes
            case .tq2_0: count / GGUFEncoding.tq2Block * GGUFEncoding.tq2BlockBytes
            }
        }
    }

    public struct TensorData {
        public var name: String
        /// Row-major, outermost first.
        public var shape: [Int]
        public var type: TensorType
        public var bytes: [UInt8]
    }

    public static let alignment = 32
    public var metadata: [(key: String, value: GGUFValue)] = []
    public var tensors: [TensorData] = []

    public init() {}

    public func serialized() -> [UInt8] {
        var out = ByteWriter()
        out.bytes += Array("GGUF".utf8)
        out.u32(3)
        out.u64(UInt64(tensors.count))
        out.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            out.string(key)
            out.value(value)
        }
        var offset = 0
        for t in tensors {
            out.string(t.name)
            out.u32(UInt32(t.shape.count))
            for d in t.shape.reversed() { out.u64(UInt64(d)) }
            out.u32(t.type.rawValue)
            out.u64(UInt64(offset))
            offset = Self.aligned(offset + t.bytes.count)
        }
        out.pad(to: Self.alignment)
        for t in tensors {
            out.bytes += t.bytes
            out.pad(to: Self.alignment)
        }
        return out.bytes
    }

    static func aligned(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
}

/// Little-endian GGUF encoding of numbers, strings and metadata values.
private struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        bytes += utf8
    }
    mutating func pad(to alignment: Int) {
        bytes += [UInt8](repeating: 0, count: (alignment - bytes.count % alignment) % alignment)
    }

    // GGUF's value type codes.
    private static let uint32Type: UInt32 = 4, int32Type: UInt32 = 5, float32Type: UInt32 = 6, boolType: UInt32 = 7,
                       stringType: UInt32 = 8, arrayType: UInt32 = 9

    mutating func value(_ v: GGUFValue) {
        switch v {
        case .uint32(let x): u32(Self.uint32Type); u32(x)
        case .int32(let x): u32(Self.int32Type); u32(UInt32(bitPattern: x))
        case .float32(let x): u32(Self.float32Type); u32(x.bitPattern)
        case .bool(let x): u32(Self.boolType); bytes.append(x ? 1 : 0)
        case .string(let s): u32(Self.stringType); string(s)
        case .strings(let a):
            u32(Self.arrayType); u32(Self.stringType); u64(UInt64(a.count))
            for s in a { string(s) }
        case .int32s(let a):
            u32(Self.arrayType); u32(Self.int32Type); u64(UInt64(a.count))
            for x in a { u32(UInt32(bitPattern: x)) }
        }
    }
}

/// ggml's F16, Q8_0 and TQ2_0 encodings.
public enum GGUFEncoding {
    static let q8Block = 32
    static let q8BlockBytes = 2 + 32
    static let tq2Block = 256
    static let tq2BlockBytes = 64 + 2

    public static func f32(_ x: [Float]) -> [UInt8] {
        x.withUnsafeBytes { Array($0) }  // (x86 and ARM are little-endian)
    }

    /// IEEE half precision, rounded to nearest even.
    public static func f16(_ x: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: x.count * 2)
        for (i, v) in x.enumerated() {
            let h = Float16(v).bitPattern
            out[2 * i] = UInt8(h & 0xFF)
            out[2 * i + 1] = UInt8(h >> 8)
        }
        return out
    }

    /// Blocks of 32 values: an f16 scale d = max|x| / 127, then 32 signed bytes round(x / d).
    /// The count must be a multiple of 32.
    public static func q8_0(_ x: [Float]) -> [UInt8] {
        precondition(x.count % q8Block == 0, "Q8_0 needs a multiple of 32 values")
        var out = [UInt8](repeating: 0, count: x.count / q8Block * q8BlockBytes)
        for block in 0..<(x.count / q8Block) {
            let values = x[(block * q8Block)..<((block + 1) * q8Block)]
            let amax = values.reduce(0) { max($0, abs($1)) }
            let d = amax / 127
            let inverse = d > 0 ? 1 / d : 0
            let scale = Float16(d).bitPattern
            let o = block * q8BlockBytes
            out[o] = UInt8(scale & 0xFF)
            out[o + 1] = UInt8(scale >> 8)
            for (j, v) in values.enumerated() {
                out[o + 2 + j] = UInt8(bitPattern: Int8((v * inverse).rounded(.toNearestOrAwayFromZero)))
            }
        }
        return out
    }

    /// Ternary blocks of 256 values: 64 bytes of 2-bit codes round(x / d) + 1, then an f16
    /// scale d = max|x|. In each half of 128 values, byte m holds values m, m+32, m+64 and
    /// m+96 in its bit pairs from the lowest (the order slm_gemv_t2 reads too). Exact for
    /// values in {−s, 0, s}, up to the f16 rounding of s. The count must be a multiple of 256.
    public static func tq2_0(_ x: [Float]) -> [UInt8] {
        precondition(x.count % tq2Block == 0, "TQ2_0 needs a multiple of 256 values")
        var out = [UInt8](repeating: 0, count: x.count / tq2Block * tq2BlockBytes)
        for block in 0..<(x.count / tq2Block) {
            let base = block * tq2Block, o = block * tq2BlockBytes
            let d = x[base..<(base + tq2Block)].reduce(0) { max($0, abs($1)) }
            let inverse = d > 0 ? 1 / d : 0
            for i in 0..<tq2Block {
                let code = Int(min(max((x[base + i] * inverse).rounded(.toNearestOrAwayFromZero), -1), 1)) + 1
                let (half, k) = i.quotientAndRemainder(dividingBy: 128)
                out[o + half * 32 + k % 32] |= UInt8(code) << (2 * (k / 32))
            }
            let scale = Float16(d).bitPattern
            out[o + 64] = UInt8(scale & 0xFF)
            out[o + 65] = UInt8(scale >> 8)
        }
        return out
    }
}
