import Foundation

/// A GGUF reader written for the tests only, from the format's description, so that the
/// writer is checked against a second reading of the format (the pure-Python `gguf`
/// package checks it again in CI).
struct GGUFReader {
    enum Value: Equatable {
        case uint32(UInt32), int32(Int32), float32(Float), bool(Bool), string(String)
        case array([Value])
    }

    struct TensorInfo {
        var name: String
        /// Innermost first, as stored.
        var dimensions: [Int]
        var type: UInt32
        var offset: Int
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    let bytes: [UInt8]
    var version: UInt32 = 0
    var metadata: [String: Value] = [:]
    var metadataOrder: [String] = []
    var tensors: [TensorInfo] = []
    var dataStart = 0
    private var position = 0

    init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        guard try take(4) == Array("GGUF".utf8) else { throw Failure(description: "bad magic") }
        version = try u32()
        let tensorCount = try u64(), metadataCount = try u64()
        for _ in 0..<metadataCount {
            let key = try string()
            metadata[key] = try value(type: try u32())
            metadataOrder.append(key)
        }
        for _ in 0..<tensorCount {
            let name = try string()
            let dims = try (0..<Int(try u32())).map { _ in Int(try u64()) }
            tensors.append(TensorInfo(name: name, dimensions: dims, type: try u32(), offset: Int(try u64())))
        }
        var alignment = 32
        if case .uint32(let a)? = metadata["general.alignment"] { alignment = Int(a) }
        dataStart = (position + alignment - 1) / alignment * alignment
    }

    func tensor(_ name: String) -> TensorInfo? { tensors.first { $0.name == name } }

    /// The tensor's values as floats, dequantised from F16, Q8_0 or TQ2_0.
    func floats(_ t: TensorInfo) throws -> [Float] {
        let count = t.dimensions.reduce(1, *)
        let start = dataStart + t.offset
        switch t.type {
        case 0:
            return (0..<count).map { i in Float(bitPattern: word(start + 4 * i)) }
        case 1:
            return (0..<count).map { i in Float(Float16(bitPattern: half(start + 2 * i))) }
        case 8:
            var out: [Float] = []
            for block in 0..<(count / 32) {
                let o = start + block * 34
                let d = Float(Float16(bitPattern: half(o)))
                for j in 0..<32 { out.append(d * Float(Int8(bitPattern: bytes[o + 2 + j]))) }
            }
            return out
        case 35:  // TQ2_0: per 256 values, 64 bytes of 2-bit codes then an f16 scale; ggml's reading order
            var out: [Float] = []
            for block in 0..<(count / 256) {
                let o = start + block * 66
                let d = Float(Float16(bitPattern: half(o + 64)))
                for half in 0..<2 {
                    for pair in 0..<4 {
                        for m in 0..<32 { out.append(d * Float(Int(bytes[o + half * 32 + m] >> (2 * pair) & 3) - 1)) }
                    }
                }
            }
            return out
        default:
            throw Failure(description: "type \(t.type)")
        }
    }

    private func word(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
    private func half(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }

    private mutating func take(_ n: Int) throws -> [UInt8] {
        guard position + n <= bytes.count else { throw Failure(description: "truncated at \(position)") }
        defer { position += n }
        return Array(bytes[position..<(position + n)])
    }
    private mutating func u32() throws -> UInt32 { try take(4).enumerated().reduce(0) { $0 | UInt32($1.1) << (8 * $1.0) } }
    private mutating func u64() throws -> UInt64 { try take(8).enumerated().reduce(0) { $0 | UInt64($1.1) << (8 * $1.0) } }
    private mutating func string() throws -> String { String(decoding: try take(Int(try u64())), as: UTF8.self) }

    private mutating func value(type: UInt32) throws -> Value {
        switch type {
        case 4: return .uint32(try u32())
        case 5: return .int32(Int32(bitPattern: try u32()))
        case 6: return .float32(Float(bitPattern: try u32()))
        case 7: return .bool(try take(1)[0] != 0)
        case 8: return .string(try string())
        case 9:
            let elementType = try u32()
            return .array(try (0..<Int(try u64())).map { _ in try value(type: elementType) })
        default: throw Failure(description: "value type \(type)")
        }
    }
}
