#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Element types a storage can hold. The ops compute in float32 today; bf16 and f16
/// storage exist so weights and activations can be kept narrow and widened by kernels
/// that understand them, without a second tensor type.
public enum DType: String, Sendable, Codable, CaseIterable {
    case float32, bfloat16, float16

    public var byteSize: Int { self == .float32 ? 4 : 2 }
}

/// Where a storage's bytes live. Only the CPU exists now; a GPU backend adds a case and
/// its own kernels, and the ops dispatch on `storage.device`.
public enum Device: String, Sendable, Codable {
    case cpu
}

/// A block of 64-byte-aligned memory holding `count` elements of one dtype.
/// Several tensors (views) may share one storage.
public final class Storage: @unchecked Sendable {
    public let raw: UnsafeMutableRawPointer
    public let count: Int
    public let dtype: DType
    public let device: Device

    public static let alignment = 64

    public init(count: Int, dtype: DType = .float32, zeroed: Bool = true) {
        precondition(count >= 0, "Storage: negative element count \(count)")
        let bytes = max(count * dtype.byteSize, 1)
        let rounded = (bytes + Storage.alignment - 1) / Storage.alignment * Storage.alignment
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, Storage.alignment, rounded) == 0, let pointer else {
            fatalError("Storage: could not allocate \(rounded) bytes")
        }
        if zeroed { memset(pointer, 0, rounded) }
        self.raw = pointer
        self.count = count
        self.dtype = dtype
        self.device = .cpu
    }

    deinit { free(raw) }

    public var byteCount: Int { count * dtype.byteSize }

    /// The elements as float32; traps for other dtypes rather than reinterpreting bytes.
    public var floats: UnsafeMutablePointer<Float> {
        precondition(dtype == .float32, "Storage: expected float32 storage, found \(dtype)")
        return raw.assumingMemoryBound(to: Float.self)
    }

    /// The elements as raw 16-bit words (bfloat16 or float16 storage).
    public var halfWords: UnsafeMutablePointer<UInt16> {
        precondition(dtype.byteSize == 2, "Storage: expected 16-bit storage, found \(dtype)")
        return raw.assumingMemoryBound(to: UInt16.self)
    }
}
