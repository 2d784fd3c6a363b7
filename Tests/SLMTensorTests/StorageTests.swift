import Foundation
import SLMSupport
import Testing
@testable import SLMTensor

/// The buffer pool's size classes and cap. Serialized: one test lowers the cap that the
/// other relies on.
@Suite(.serialized) struct StorageTests {
    @Test func sizeClasses() {
        #expect(Storage.roundedBytes(1) == 64)
        #expect(Storage.roundedBytes(100) == 128)
        #expect(Storage.roundedBytes(65_536) == 65_536)
        // 70,000 bytes: between 64 KiB and 128 KiB the classes are 8 KiB apart.
        #expect(Storage.roundedBytes(70_000) == 73_728)
        #expect(Storage.roundedBytes(1 << 20) == 1 << 20)
        #expect(Storage.roundedBytes((1 << 20) + 1) == (1 << 20) + (1 << 17))
        for bytes in [65_536, 70_000, 123_457, 1_000_000, 50_000_000] {
            let r = Storage.roundedBytes(bytes)
            #expect(r >= bytes && Double(r) <= Double(bytes) * 1.125 + 64)
        }
    }

    /// A freed buffer serves a later tensor of a slightly different size in its class
    /// (a mixture of experts' per-expert batches change size every step).
    @Test func nearbySizesReuseOneBuffer() {
        // An unusual class (32–36 MiB) that tests running in parallel are unlikely to use.
        var first: Storage? = Storage(count: 9_300_000, zeroed: false)   // 37.2 MB → the 37,748,736-byte class
        let address = first!.raw
        first = nil
        let second = Storage(count: 9_400_000, zeroed: false)           // 37.6 MB, same class
        #expect(second.raw == address)
        #expect(first == nil)
    }

    /// The cap holds, and lowering it frees what no longer fits.
    @Test func cacheKeepsToItsCap() {
        let saved = BufferCache.limitBytes
        defer { BufferCache.limitBytes = saved }
        BufferCache.limitBytes = 1 << 20
        #expect(BufferCache.cachedBytes <= 1 << 20)
        var held: [Storage] = (0..<8).map { _ in Storage(count: 100_000, zeroed: false) }  // 8 × 400 KB
        held.removeAll()
        #expect(BufferCache.cachedBytes <= 1 << 20)
        #expect(BufferCache.cachedBytes >= 409_600)   // a buffer or two did stay for reuse
        BufferCache.limitBytes = 0
        #expect(BufferCache.cachedBytes == 0)
        _ = Storage(count: 100_000, zeroed: false)
        #expect(BufferCache.cachedBytes == 0)
    }

    /// A buffer nobody asks for within the idle time goes back to the system.
    @Test func idleBuffersAreFreed() async throws {
        let saved = BufferCache.idleSeconds
        defer { BufferCache.idleSeconds = saved }
        BufferCache.idleSeconds = 0.05
        _ = Storage(count: 8_500_000, zeroed: false)   // 34 MB: cached as it is freed
        #expect(BufferCache.cachedBytes >= 34_000_000)
        try await Task.sleep(for: .milliseconds(150))
        _ = Storage(count: 20_000, zeroed: false)       // the next buffer given back sweeps
        #expect(BufferCache.cachedBytes < 34_000_000)
    }

    /// Pooled buffers are pages of their own: once freed, they leave the resident set.
    @Test func freedBuffersLeaveTheResidentSet() throws {
        guard let before = ProcessMemory.residentBytes() else { return }  // (Linux only)
        let saved = BufferCache.limitBytes
        defer { BufferCache.limitBytes = saved }
        BufferCache.limitBytes = 0
        var big: Storage? = Storage(count: 32 << 20)          // 128 MiB, touched by zeroing
        let held = try #require(ProcessMemory.residentBytes())
        #expect(held - before > 96 << 20)
        big = nil
        let after = try #require(ProcessMemory.residentBytes())
        #expect(held - after > 96 << 20)
        #expect(big == nil)
    }
}
