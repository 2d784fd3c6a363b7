import Foundation
import SLMVisual

/// Follows one run's metrics.jsonl as the trainer appends to it: reads only what is new,
/// keeps a line cut short until it is complete, and starts over if the file is replaced
/// or truncated (a new run in the same folder).
struct RunFollower {
    let path: String
    let file: URL
    private(set) var log: MetricsLog
    private var offset: UInt64 = 0
    private var partial = Data()
    private(set) var modified: Date?

    init(path: String) {
        self.path = path
        file = MetricsLog.file(for: path)
        log = MetricsLog(run: MetricsLog.runName(for: path))
    }

    /// Reads what was appended since the last call; true when there were new records.
    mutating func update() -> Bool {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file.path),
              let size = (attributes[.size] as? NSNumber)?.uint64Value else { return false }
        modified = attributes[.modificationDate] as? Date
        if size < offset {  // replaced or truncated
            (offset, partial) = (0, Data())
            log = MetricsLog(run: log.run)
        }
        guard size > offset, let handle = try? FileHandle(forReadingFrom: file) else { return false }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.readToEnd(), !data.isEmpty else { return false }
        offset += UInt64(data.count)
        partial.append(data)
        guard let cut = partial.lastIndex(of: UInt8(ascii: "\n")) else { return false }
        let complete = partial[partial.startIndex..<cut]
        partial = Data(partial[(cut + 1)...])
        let before = log.records.count
        log.append(String(decoding: complete, as: UTF8.self).split(separator: "\n"))
        return log.records.count > before
    }
}
