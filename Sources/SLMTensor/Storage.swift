#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import SLMSupport

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
        if !BufferPool.give(raw, bytes) { Storage.release(raw, bytes) }
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

    /// Pooled sizes are pages mapped for them alone (`PageMemory`), so that freeing one
    /// gives its memory back to the system at once; from the C heap, freed blocks would
    /// stay resident between live ones.
    private static func allocate(_ bytes: Int) -> UnsafeMutableRawPointer {
        if bytes >= BufferPool.minimumBytes {
            guard let p = PageMemory.map(bytes) else { fatalError("Storage: could not map \(bytes) bytes") }
            return p
        }
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, alignment, bytes) == 0, let pointer else {
            fatalError("Storage: could not allocate \(bytes) bytes")
        }
        return pointer
    }

    /// Gives back what `allocate` took (`bytes` as rounded).
    static func release(_ pointer: UnsafeMutableRawPointer, _ bytes: Int) {
        if bytes >= BufferPool.minimumBytes { PageMemory.unmap(pointer, bytes) } else { free(pointer) }
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
/// stays flat. The cache is capped (`BufferCache.limitBytes`; past the cap buffers are
/// freed), and a buffer nobody asked for during `idleSeconds` is freed too: a server
/// whose prompts come in ever new lengths would otherwise fill the cache, size class by
/// size class, up to the cap.
enum BufferPool {
    /// A buffer the pool owns exclusively while it holds it, and when it came back.
    private struct Buffer: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        let since: UInt64
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
        var idleNanoseconds: UInt64 = 30_000_000_000
        var lastSweep: UInt64 = 0

        /// Removes buffers idle longer than allowed (checked at most every second).
        mutating func stale(now: UInt64, force: Bool = false) -> [(Buffer, Int)] {
            guard force || now &- lastSweep >= min(1_000_000_000, idleNanoseconds) else { return [] }
            lastSweep = now
            var out: [(Buffer, Int)] = []
            // Buffers are appended as they come back, so the idle ones lead each list.
            for (size, list) in buckets {
                let cut = list.firstIndex { now &- $0.since <= idleNanoseconds } ?? list.count
                guard cut > 0 else { continue }
                out += list[..<cut].map { ($0, size) }
                buckets[size] = cut == list.count ? nil : Array(list[cut...])
                cachedBytes -= cut * size
            }
            return out
        }
    }

    private static let state = Locked(State())
    static let minimumBytes = 64 << 10

    private static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

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
        let t = now()
        let (kept, stale) = state.withLock { s in
            let stale = s.stale(now: t)
            guard s.cachedBytes + bytes <= s.limitBytes else { return (false, stale) }
            s.buckets[bytes, default: []].append(Buffer(pointer: pointer, since: t))
            s.cachedBytes += bytes
            return (true, stale)
        }
        for (b, size) in stale { Storage.release(b.pointer, size) }
        return kept
    }

    static var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    static var limitBytes: Int {
        get { state.withLock { $0.limitBytes } }
        set {
            // Frees what no longer fits, largest sizes first (outside the lock).
            let surplus: [(Buffer, Int)] = state.withLock { s in
                s.limitBytes = max(0, newValue)
                var freed: [(Buffer, Int)] = []
                for size in s.buckets.keys.sorted(by: >) where s.cachedBytes > s.limitBytes {
                    while s.cachedBytes > s.limitBytes, let b = s.buckets[size]?.popLast() {
                        freed.append((b, size))
                        s.cachedBytes -= size
                    }
                    if s.buckets[size]?.isEmpty == true { s.buckets[size] = nil }
                }
                return freed
            }
            for (b, size) in surplus { Storage.release(b.pointer, size) }
        }
    }

    /// How long a cached buffer may go unused before it is freed.
    static var idleSeconds: Double {
        get { state.withLock { Double($0.idleNanoseconds) / 1e9 } }
        set {
            let stale = state.withLock { s in
                s.idleNanoseconds = UInt64(max(0, newValue) * 1e9)
                return s.stale(now: now(), force: true)
            }
            for (b, size) in stale { Storage.release(b.pointer, size) }
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

    /// Seconds a cached buffer may go unused before it goes back to the system (30).
    public static var idleSeconds: Double {
        get { BufferPool.idleSeconds }
        set { BufferPool.idleSeconds = newValue }
    }
}
