#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

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

    /// `zeroed: false` leaves the contents undefined, for outputs a kernel writes in full.
    public init(count: Int, dtype: DType = .float32, zeroed: Bool = true) {
        precondition(count >= 0, "Storage: negative element count \(count)")
        let bytes = Storage.roundedBytes(count * dtype.byteSize)
        let pointer = BufferPool.take(bytes) ?? Storage.allocate(bytes)
        if zeroed { memset(pointer, 0, bytes) }
        self.raw = pointer
        self.count = count
        self.dtype = dtype
        self.device = .cpu
    }

    deinit {
        let bytes = Storage.roundedBytes(count * dtype.byteSize)
        if !BufferPool.give(raw, bytes) { free(raw) }
    }

    /// Small buffers round to the alignment; pooled ones (`BufferPool.minimumBytes` and
    /// up) to one of 8 size classes per power of two, so that tensors whose sizes vary
    /// from step to step (a mixture of experts' per-expert batches) reuse buffers instead
    /// of filling the pool with sizes never asked for again. At most 1/8 is wasted.
    static func roundedBytes(_ bytes: Int) -> Int {
        let aligned = (max(bytes, 1) + alignment - 1) / alignment * alignment
        guard aligned >= BufferPool.minimumBytes else { return aligned }
        let step = (1 << (Int.bitWidth - 1 - aligned.leadingZeroBitCount)) / 8
        return (aligned + step - 1) / step * step
    }

    private static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, alignment, bytes) == 0, let pointer else {
            fatalError("Storage: could not allocate \(bytes) bytes")
        }
        return pointer
    }

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

/// Freed buffers of 64 KiB or more, kept by size for the next allocation of that size.
///
/// A training step allocates the same sizes every time, so after the first step nothing
/// comes from the system: no page faults, no zeroing by the kernel, and resident memory
/// stays flat instead of creeping with the C allocator's heap. The cache is capped
/// (`BufferCache.limitBytes`); past the cap buffers are freed.
enum BufferPool {
    /// A buffer the pool owns exclusively while it holds it.
    private struct Buffer: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
    }

    private struct State {
        var buckets: [Int: [Buffer]] = [:]
        var cachedBytes = 0
        var limitBytes: Int = {
            if let text = ProcessInfo.processInfo.environment["SLM_BUFFER_CACHE_MB"], let mb = Int(text), mb >= 0 {
                return mb << 20
            }
            return Int(ProcessInfo.processInfo.physicalMemory / 4)
        }()
    }

    private static let state = Mutex(State())
    static let minimumBytes = 64 << 10

    static func take(_ bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes >= minimumBytes else { return nil }
        return state.withLock { s in
            guard let b = s.buckets[bytes]?.popLast() else { return nil }
            s.cachedBytes -= bytes
            return b.pointer
        }
    }

    /// Keeps `pointer` for reuse; false if it should be freed instead.
    static func give(_ pointer: UnsafeMutableRawPointer, _ bytes: Int) -> Bool {
        guard bytes >= minimumBytes else { return false }
        let buffer = Buffer(pointer: pointer)
        return state.withLock { s in
            guard s.cachedBytes + bytes <= s.limitBytes else { return false }
            s.buckets[bytes, default: []].append(buffer)
            s.cachedBytes += bytes
            return true
        }
    }

    static var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    static var limitBytes: Int {
        get { state.withLock { $0.limitBytes } }
        set {
            // Frees what no longer fits, largest sizes first (outside the lock).
            let surplus: [Buffer] = state.withLock { s in
                s.limitBytes = max(0, newValue)
                var freed: [Buffer] = []
                for size in s.buckets.keys.sorted(by: >) where s.cachedBytes > s.limitBytes {
                    while s.cachedBytes > s.limitBytes, let b = s.buckets[size]?.popLast() {
                        freed.append(b)
                        s.cachedBytes -= size
                    }
                }
                return freed
            }
            for b in surplus { free(b.pointer) }
        }
    }
}

/// The cache of freed tensor buffers that makes repeated steps allocation-free: its cap
/// (by default a quarter of physical memory, or `SLM_BUFFER_CACHE_MB`) and what it holds.
/// A server lowers the cap so that its memory stays bounded whatever the traffic.
public enum BufferCache {
    public static var limitBytes: Int {
        get { BufferPool.limitBytes }
        set { BufferPool.limitBytes = newValue }
    }

    public static var cachedBytes: Int { BufferPool.cachedBytes }
}
