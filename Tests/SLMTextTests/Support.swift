import Foundation

/// A temporary folder for one test, removed when the value is dropped.
final class Scratch {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("slm-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    @discardableResult
    func write(_ name: String, _ text: String) -> URL { write(name, Data(text.utf8)) }

    @discardableResult
    func write(_ name: String, _ data: Data) -> URL {
        let file = url.appendingPathComponent(name)
        try! FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try! data.write(to: file)
        return file
    }

    func read(_ name: String) -> String {
        (try? String(contentsOf: url.appendingPathComponent(name), encoding: .utf8)) ?? ""
    }

    func lines(_ name: String) -> [String] { read(name).split(separator: "\n").map(String.init) }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path) }
}

/// The shared corpus beside the project, when the tests run from a checkout that has it.
let sharedCorpus: URL? = {
    var dir = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { dir.deleteLastPathComponent() }  // …/Tests/SLMTextTests/Support.swift → checkout
    let corpus = dir.deletingLastPathComponent().appendingPathComponent("shared/corpus")
    return FileManager.default.fileExists(atPath: corpus.appendingPathComponent("manifest.tsv").path) ? corpus : nil
}()

enum Fixtures {
    static let gutenberg = """
    The Project Gutenberg EBook of Dialogues, by Someone\r
    \r
    This eBook is for the use of anyone anywhere at no cost.\r
    \r
    *** START OF THIS PROJECT GUTENBERG EBOOK DIALOGUES ***\r
    \r
    Produced by Volunteer Readers and Another Person.\r
    \r
    The first paragraph of the book speaks of caves and shadows on the wall.\r
    It goes on for a second line.\r
    \r
    The second paragraph asks what justice is, and answers with a question.\r
    \r
    End of the Project Gutenberg EBook of Dialogues, by Someone\r
    \r
    *** END OF THIS PROJECT GUTENBERG EBOOK DIALOGUES ***\r
    \r
    Licence text that is not part of the book.\r
    """

    static let markdown = """
    # A Treatise

    ## CONTENTS

    1. First chapter — 1
    2. Second chapter — 5

    ## 1

    **71a** All teaching and all learning start from what is already known.[^1] This is *evident* if we look.

    ## 2

    A second paragraph follows here, long enough to keep as its own chunk of text.

    ---

    [^1]: Cf. 72b 4.
        A footnote body continued on an indented line.

    ## CONTENTS: *THE NEXT WORK*

    ### BOOK I

    1. Something of the next work [52b 38]
    """
}
