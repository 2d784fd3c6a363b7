import Foundation

/// The calls that make a write durable, behind one seam so that tests can check their
/// order (a `kill -9` cannot: the page cache survives it). `current` is task-local: a
/// test records its own writes without touching other tests'.
public struct FileSync: Sendable {
    public var syncFile: @Sendable (URL) throws -> Void
    public var syncDirectory: @Sendable (URL) throws -> Void
    public var rename: @Sendable (_ from: URL, _ to: URL) throws -> Void

    public init(syncFile: @escaping @Sendable (URL) throws -> Void, syncDirectory: @escaping @Sendable (URL) throws -> Void,
                rename: @escaping @Sendable (URL, URL) throws -> Void) {
        self.syncFile = syncFile
        self.syncDirectory = syncDirectory
        self.rename = rename
    }

    /// fsync(2) on files and directories, rename(2).
    public static let system = FileSync(
        syncFile: { try fsyncPath($0, directory: false) },
        syncDirectory: { try fsyncPath($0, directory: true) },
        rename: { from, to in
            guard Foundation.rename(from.path, to.path) == 0 else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: to.path,
                    NSLocalizedDescriptionKey: "could not rename \(from.path) to \(to.path): \(String(cString: strerror(errno)))"])
            }
        })

    @TaskLocal public static var current = FileSync.system
}

private func fsyncPath(_ url: URL, directory: Bool) throws {
    let fd = open(url.path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY)
    guard fd >= 0 else {
        throw CocoaError(.fileReadUnknown, userInfo: [NSFilePathErrorKey: url.path,
            NSLocalizedDescriptionKey: "could not open \(url.path) to sync it: \(String(cString: strerror(errno)))"])
    }
    defer { close(fd) }
    guard fsync(fd) == 0 else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path,
            NSLocalizedDescriptionKey: "could not sync \(url.path): \(String(cString: strerror(errno)))"])
    }
}

/// Writes files so that an interrupted run, or a power cut, never leaves one that looks
/// complete but is not: the bytes go to a temporary name beside the target and are
/// synced, the temporary is renamed over the target, and the directory is synced.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let temp = temporaryURL(for: url)
        do {
            try data.write(to: temp)
            try FileSync.current.syncFile(temp)
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

    /// Moves `temp` (already synced) over `url` in one rename, then syncs the directory
    /// so that the rename itself is durable.
    public static func replace(_ url: URL, with temp: URL) throws {
        try FileSync.current.rename(temp, url)
        try FileSync.current.syncDirectory(url.deletingLastPathComponent())
    }
}
