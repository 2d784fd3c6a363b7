import Foundation

/// One book to prepare, with the metadata the enriched output carries.
public struct BookSource: Sendable, Equatable {
    public var url: URL
    /// The path as the user or the manifest named it (for messages and stats).
    public var name: String
    public var author: String
    public var title: String
    public var category: String

    /// "quadrivium" for the mathematical arts, "trivium" for the rest.
    public var phase: String { category.lowercased() == "quadrivium" ? "quadrivium" : "trivium" }
}

/// Problems with the input that stop a run, each explained in one line.
public enum PipelineError: Error, CustomStringConvertible, Equatable {
    case notFound(String)
    case noBooks(String)
    case manifest(path: String, line: Int, reason: String)
    case emptyBook(String)
    case invalidUTF8(path: String, offset: Int)
    case invalidOption(String)

    public var description: String {
        switch self {
        case .notFound(let p): "\(p): no such file or folder"
        case .noBooks(let p): "\(p): no .txt files found"
        case .manifest(let p, let line, let reason): "\(p) line \(line): \(reason)"
        case .emptyBook(let p): "\(p): the book is empty (no text left after removing boilerplate)"
        case .invalidUTF8(let p, let offset): "\(p): invalid UTF-8 at byte offset \(offset) (use --invalid-utf8 replace to substitute and count such bytes)"
        case .invalidOption(let message): message
        }
    }
}

public enum CorpusSource {
    /// The books at `path`: a folder with manifest.tsv (columns file, author, title,
    /// category, …), a bare folder of .txt files (searched recursively; author and title
    /// from `author_title.txt`, category from the sub-folder), or a single file.
    public static func discover(_ path: String) throws -> [BookSource] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else { throw PipelineError.notFound(path) }
        let root = URL(fileURLWithPath: path)
        guard isDir.boolValue else { return [fromFileName(root, name: path, category: "unknown")] }
        let manifest = root.appendingPathComponent("manifest.tsv")
        if fm.fileExists(atPath: manifest.path) { return try readManifest(manifest, root: root) }

        guard let walker = fm.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw PipelineError.notFound(path)
        }
        var books: [BookSource] = []
        for case let url as URL in walker where url.pathExtension == "txt" {
            let relative = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count + 1))
            let parts = relative.split(separator: "/")
            books.append(fromFileName(url, name: relative, category: parts.count > 1 ? String(parts[parts.count - 2]) : "unknown"))
        }
        guard !books.isEmpty else { throw PipelineError.noBooks(path) }
        return books.sorted { $0.name < $1.name }
    }

    static func fromFileName(_ url: URL, name: String, category: String) -> BookSource {
        let stem = url.deletingPathExtension().lastPathComponent
        let pieces = stem.split(separator: "_", maxSplits: 1).map(String.init)
        let author = pieces.count == 2 ? pieces[0].capitalized : "unknown"
        let title = (pieces.count == 2 ? pieces[1] : stem).replacingOccurrences(of: "_", with: " ").capitalized
        return BookSource(url: url, name: name, author: author, title: title, category: category)
    }

    static func readManifest(_ manifest: URL, root: URL) throws -> [BookSource] {
        let name = manifest.path
        guard let text = try? String(contentsOf: manifest, encoding: .utf8) else {
            throw PipelineError.manifest(path: name, line: 1, reason: "cannot be read as UTF-8 text")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.hasSuffix("\r") ? String($0.dropLast()) : String($0)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let header = lines.first?.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) else {
            throw PipelineError.manifest(path: name, line: 1, reason: "empty manifest")
        }
        var column: [String: Int] = [:]
        for (i, h) in header.enumerated() { column[h.trimmingCharacters(in: .whitespaces).lowercased()] = i }
        for required in ["file", "author", "title", "category"] where column[required] == nil {
            throw PipelineError.manifest(path: name, line: 1, reason: "missing column '\(required)' (have: \(header.joined(separator: ", ")))")
        }
        var books: [BookSource] = []
        for (index, line) in lines.enumerated().dropFirst() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            func field(_ key: String) -> String? {
                let i = column[key]!
                return i < fields.count ? fields[i].trimmingCharacters(in: .whitespaces) : nil
            }
            guard let file = field("file"), !file.isEmpty else {
                throw PipelineError.manifest(path: name, line: index + 1, reason: "no file name")
            }
            let url = root.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw PipelineError.manifest(path: name, line: index + 1, reason: "\(file) does not exist")
            }
            books.append(BookSource(url: url, name: file, author: field("author") ?? "unknown",
                                    title: field("title") ?? file, category: field("category") ?? "unknown"))
        }
        guard !books.isEmpty else { throw PipelineError.manifest(path: name, line: 2, reason: "no books listed") }
        return books
    }
}
