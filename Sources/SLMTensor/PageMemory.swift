#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Large buffers mapped for themselves, so that freeing one returns its memory to the
/// system at once, and backed by 2 MiB pages where Linux allows it.
///
/// Streaming kernels (a decoder's GEMVs, a batched step's weights, elementwise passes
/// over activations) touch a new 4 KiB page every 1,024 floats; past the TLB's reach
/// (8 MiB on Zen 3) each one costs a page walk. With transparent huge pages in `madvise`
/// mode (Debian's default) a mapping gets 2 MiB pages only when asked: a single-thread
/// GEMV over 60 MB streamed 13.2 GB/s with 4 KiB pages and 15.8 GB/s with 2 MiB ones on
/// Zen 3 (docs/BENCHMARKS.md). Elsewhere (`never`, macOS) the advice is ignored.
public enum PageMemory {
    /// Mappings of at least this size are aligned to it and advised to use huge pages.
    public static let hugePageBytes = 2 << 20

    /// `bytes` of zeroed memory, page-aligned, or nil if the system refuses.
    public static func map(_ bytes: Int) -> UnsafeMutableRawPointer? {
        let size = pages(bytes)
        guard size >= hugePageBytes else { return mapPages(size) }
        // Over-map by one huge page and trim both ends, so the region starts on a 2 MiB
        // boundary and every whole 2 MiB of it can be a huge page.
        guard let raw = mapPages(size + hugePageBytes) else { return nil }
        let start = (Int(bitPattern: raw) + hugePageBytes - 1) / hugePageBytes * hugePageBytes
        let head = start - Int(bitPattern: raw), tail = hugePageBytes - head
        if head > 0 { munmap(raw, head) }
        let region = raw + head
        if tail > 0 { munmap(region + size, tail) }
        #if os(Linux)
        _ = madvise(region, size, Int32(MADV_HUGEPAGE))
        #endif
        return region
    }

    /// Gives back what `map` returned for the same `bytes`.
    public static func unmap(_ pointer: UnsafeMutableRawPointer, _ bytes: Int) {
        munmap(pointer, pages(bytes))
    }

    private static let pageBytes = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)

    private static func pages(_ bytes: Int) -> Int { (max(bytes, 1) + pageBytes - 1) / pageBytes * pageBytes }

    private static func mapPages(_ bytes: Int) -> UnsafeMutableRawPointer? {
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { return nil }
        return p
    }
}
