import Foundation

/// Writes files so that an interrupted run never leaves one that looks complete: the
/// bytes go to a temporary name beside the target, which is renamed over it at the end.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let temp = temporaryURL(for: url)
        do {
            try data.write(to: temp)
            try replace(url, with: temp)
        } catch {
            try? FileManager.default.removeItem(at: temp)
            throw error
        }
    }

    /// A hidden name in the same directory (so the rename stays on one file system).
    public static func temporaryURL(for url: URL) -> URL {
        url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).partial-\(ProcessInfo.processInfo.processIdentifier)")
    }

    /// Moves `temp` over `url` in one rename.
    public static func replace(_ url: URL, with temp: URL) throws {
        if rename(temp.path, url.path) != 0 {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path,
                NSLocalizedDescriptionKey: "could not rename \(temp.path) to \(url.path): \(String(cString: strerror(errno)))"])
        }
    }
}
