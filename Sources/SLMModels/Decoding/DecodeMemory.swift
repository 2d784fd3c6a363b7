import SLMTensor

/// A 64-byte-aligned buffer that a decoder owns (weights, caches, scratch): from the heap,
/// from a `WeightArena`, or from 2 MiB on mapped on its own with huge pages
/// (`PageMemory`), since the GEMVs and the attention stream it.
final class AlignedBuffer<Element> {
    let pointer: UnsafeMutablePointer<Element>
    let count: Int
    private enum Owner { case heap, mapped(bytes: Int), arena(WeightArena) }
    private let owner: Owner

    init(count: Int, zeroed: Bool = true) {
        self.count = count
        let bytes = AlignedBuffer.bytes(count)
        let raw: UnsafeMutableRawPointer
        if bytes >= PageMemory.hugePageBytes {
            guard let p = PageMemory.map(bytes) else { fatalError("decode: could not map \(bytes) bytes") }
            (raw, owner) = (p, .mapped(bytes: bytes))  // fresh pages are zero
        } else {
            raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            owner = .heap
            if zeroed { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        }
        pointer = raw.bindMemory(to: Element.self, capacity: count)
    }

    /// Zeroed memory carved from `arena`, which lives as long as this buffer.
    init(count: Int, arena: WeightArena) {
        self.count = count
        pointer = arena.take(AlignedBuffer.bytes(count)).bindMemory(to: Element.self, capacity: count)
        owner = .arena(arena)
    }

    convenience init(copying source: UnsafePointer<Element>, count: Int) {
        self.init(count: count, zeroed: false)
        pointer.update(from: source, count: count)
    }

    deinit {
        switch owner {
        case .heap: UnsafeMutableRawPointer(pointer).deallocate()
        case .mapped(let bytes): PageMemory.unmap(UnsafeMutableRawPointer(pointer), bytes)
        case .arena: break  // the arena unmaps its chunks when the last buffer goes
        }
    }

    private static func bytes(_ count: Int) -> Int { max(64, (count * MemoryLayout<Element>.stride + 63) / 64 * 64) }
}

/// The memory a model's decode matrices are carved from, one after another, so that all of
/// them sit on huge pages: a small model's matrices are each well under 2 MiB (llama-5m's
/// are 256–640 KiB) and on their own would never get one. Chunks are reserved 64 MiB at a
/// time; pages never touched cost no memory. Nothing is freed before the arena goes.
final class WeightArena {
    private static let chunkBytes = 64 << 20
    private var chunks: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
    private var used = 0

    func take(_ bytes: Int) -> UnsafeMutableRawPointer {
        let size = (bytes + 63) / 64 * 64
        if chunks.isEmpty || used + size > chunks[chunks.count - 1].bytes {
            let chunk = max(WeightArena.chunkBytes, size)
            guard let p = PageMemory.map(chunk) else { fatalError("decode: could not map \(chunk) bytes") }
            chunks.append((p, chunk))
            used = 0
        }
        defer { used += size }
        return chunks[chunks.count - 1].pointer + used
    }

    deinit { for c in chunks { PageMemory.unmap(c.pointer, c.bytes) } }
}
