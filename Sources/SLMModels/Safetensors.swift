import Foundation
import SLMSupport
import SLMTensor

/// The safetensors format: an 8-byte little-endian header length, a JSON header naming
/// each tensor's dtype, shape and byte range, then the raw little-endian data.
public enum Safetensors {
    /// Writes float32 tensors (bfloat16 tensors as BF16). Names are kept in the order given.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
                             to url: URL) throws {
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(JSONText.quote($0)):\(JSONText.quote(metadata[$0]!))" }
            entries.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for (name, t) in tensors {
            let bytes = t.count * t.dtype.byteSize
            let dtype = t.dtype == .bfloat16 ? "BF16" : "F32"
            entries.append("\(JSONText.quote(name)):{\"dtype\":\"\(dtype)\",\"shape\":[\(t.shape.dims.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }  // aligns the data
        var data = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header)
        for (_, t) in tensors {
            data.append(Data(bytesNoCopy: t.storage.raw + t.offset * t.dtype.byteSize, count: t.count * t.dtype.byteSize,
                             deallocator: .none))
        }
        try AtomicFile.write(data, to: url)
    }

    /// Reads every tensor as float32 (BF16 and F16 are widened). Any inconsistency (a
    /// short file, offsets outside the data, a size that does not match the shape) is an
    /// error naming the file, so a torn checkpoint is refused rather than half-read.
    public static func read(_ url: URL) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard let data = FileManager.default.contents(atPath: url.path) else { throw SafetensorsError("\(url.path): cannot be read") }
        return try read(data, name: url.path)
    }

    /// Reads a safetensors file's bytes; `name` goes into error messages.
    public static func read(_ data: Data, name: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        func fail(_ why: String) -> SafetensorsError { SafetensorsError("\(name): \(why)") }
        guard data.count >= 8 else { throw fail("shorter than a safetensors header (\(data.count) bytes)") }
        let headerLength = data.prefix(8).withUnsafeBytes { Int(truncatingIfNeeded: UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard headerLength > 1, headerLength <= data.count - 8, headerLength < 100_000_000 else {
            throw fail("header length \(headerLength) does not fit a file of \(data.count) bytes (truncated?)")
        }
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let base = 8 + headerLength, available = data.count - base
        var tensors: [String: Tensor] = [:], metadata: [String: String] = [:]
        for (key, value) in header {
            if key == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor \(key) has a malformed entry")
            }
            let elementSize: Int
            switch dtype {
            case "F32": elementSize = 4
            case "BF16", "F16": elementSize = 2
            default: throw fail("tensor \(key) has dtype \(dtype); F32, BF16 and F16 are supported")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("tensor \(key) has a negative dimension") }
            // Products checked for overflow: a hostile header must not trap the process.
            var count = 1
            for d in shape {
                let (c, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow, c <= available else { throw fail("tensor \(key) of shape \(shape) does not fit the file's \(available) data bytes") }
                count = c
            }
            guard offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= available, offsets[1] - offsets[0] == count * elementSize else {
                throw fail("tensor \(key) needs bytes \(offsets[0])..<\(offsets[1]) of \(available) (\(count) × \(elementSize) expected; truncated?)")
            }
            let t = Tensor.zeros(Shape(shape))
            data.withUnsafeBytes { raw in
                let src = raw.baseAddress! + base + offsets[0]
                switch dtype {
                case "F32":
                    for i in 0..<count { t.data[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                case "BF16":
                    for i in 0..<count { t.data[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
                default:
                    for i in 0..<count { t.data[i] = Float(Float16(bitPattern: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
                }
            }
            tensors[key] = t
        }
        return (tensors, metadata)
    }

}

public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

