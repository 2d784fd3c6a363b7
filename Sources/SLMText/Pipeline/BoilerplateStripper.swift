/// Turns a raw book into its body: Project Gutenberg's header, footer and licence go,
/// and so does the markup of the Great Books markdown transcriptions (headings, marginal
/// page numbers, footnote markers and bodies, tables of contents).
enum BoilerplateStripper {
    enum Format: String { case gutenberg, markdown, plain }

    /// The body as lines (line endings normalised), and the format recognised.
    static func body(of text: String) -> (lines: [Substring], format: Format) {
        let normalized = text.contains("\r") ? text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n") : text
        let lines = normalized.split(separator: "\n", omittingEmptySubsequences: false)
        let (body, format): ([Substring], Format)
        if let start = lines.firstIndex(where: isGutenbergStart) {
            (body, format) = (gutenbergBody(lines, afterHeader: start), .gutenberg)
        } else if lines.contains(where: { $0.hasPrefix("#") }) {
            (body, format) = (markdownBody(lines), .markdown)
        } else {
            (body, format) = (lines, .plain)
        }
        return (body.map { $0.contains("[") ? Substring(stripBracketedNumbers($0)) : $0 }, format)
    }

    /// Removes footnote references "[12]" and Bekker page numbers "[1160a]".
    static func stripBracketedNumbers(_ line: Substring) -> String {
        var out = "", rest = line[...]
        while let open = rest.firstIndex(of: "[") {
            out += rest[..<open]
            let inside = rest[rest.index(after: open)...].prefix { $0 != "]" }
            let digits = inside.prefix { $0.isASCII && $0.isNumber }
            let suffix = inside.dropFirst(digits.count)
            let closes = inside.endIndex < rest.endIndex
            if closes, (1...5).contains(digits.count), suffix.isEmpty || suffix == "a" || suffix == "b" {
                rest = rest[rest.index(after: inside.endIndex)...]
            } else {
                out.append("[")
                rest = rest[rest.index(after: open)...]
            }
        }
        return out + rest
    }

    // MARK: Project Gutenberg

    static func isGutenbergStart(_ line: Substring) -> Bool {
        let upper = line.uppercased()
        return (upper.hasPrefix("*** START OF") || upper.hasPrefix("***START OF")) && upper.contains("PROJECT GUTENBERG")
            || upper.hasPrefix("*END*THE SMALL PRINT")
    }

    static func isGutenbergEnd(_ line: Substring) -> Bool {
        let upper = line.uppercased()
        return (upper.hasPrefix("*** END OF") || upper.hasPrefix("***END OF")) && upper.contains("PROJECT GUTENBERG")
            || upper.hasPrefix("END OF THE PROJECT GUTENBERG") || upper.hasPrefix("END OF PROJECT GUTENBERG")
    }

    static func gutenbergBody(_ lines: [Substring], afterHeader start: Int) -> [Substring] {
        var body = lines[(start + 1)...]
        if let end = body.firstIndex(where: isGutenbergEnd) { body = body[..<end] }
        // The producers' credit line(s) right after the header are not the book.
        var i = body.startIndex
        while i < body.endIndex && body[i].trimmingCharacters(in: .whitespaces).isEmpty { i += 1 }
        if i < body.endIndex && body[i].hasPrefix("Produced by") {
            while i < body.endIndex && !body[i].trimmingCharacters(in: .whitespaces).isEmpty { i += 1 }
            body = body[i...]
        }
        return Array(body)
    }

    // MARK: Markdown transcriptions

    static func headingLevel(_ line: Substring) -> Int? {
        let hashes = line.prefix { $0 == "#" }.count
        guard hashes > 0, line.dropFirst(hashes).first == " " else { return nil }
        return hashes
    }

    /// A line that opens a table of contents: a heading or a bare line starting "CONTENTS".
    static func contentsLevel(_ line: Substring) -> Int? {
        let level = headingLevel(line)
        let text = line.drop { $0 == "#" || $0 == " " || $0 == "*" }
        guard text.uppercased().hasPrefix("CONTENTS") else { return nil }
        return level ?? (text.trimmingCharacters(in: .whitespaces).count <= 12 ? 1 : nil)
    }

    static func markdownBody(_ lines: [Substring]) -> [Substring] {
        var out: [Substring] = []
        var skipUntilLevel: Int? = nil   // inside a table of contents
        var inFootnote = false
        for line in lines {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if let level = skipUntilLevel {
                let ends = (headingLevel(line).map { $0 <= level } ?? false) || trimmed == "---"
                if !ends { continue }
                skipUntilLevel = nil
            }
            if let level = contentsLevel(line) {
                skipUntilLevel = level
                continue
            }
            if trimmed.hasPrefix("[^"), trimmed.contains("]:") {
                inFootnote = true
                continue
            }
            if inFootnote {
                // Footnote bodies continue on indented lines until a blank line.
                if trimmed.isEmpty { inFootnote = false } else if line.hasPrefix("    ") || line.hasPrefix("\t") { continue } else { inFootnote = false }
            }
            if trimmed == "---" || trimmed == "***" || trimmed == "___" || headingLevel(line) != nil { continue }
            out.append(Substring(stripInlineMarkup(line)))
        }
        return out
    }

    /// Removes footnote markers `[^1]`, bold marginal numbers `**71a**`, emphasis
    /// asterisks, escapes and link targets, keeping the words.
    static func stripInlineMarkup(_ line: Substring) -> String {
        let s = Array(line.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            let u = s[i]
            if u == "[", i + 1 < s.count, s[i + 1] == "^", let close = s[i...].firstIndex(of: "]") {
                i = close + 1   // footnote marker
                while i < s.count, s[i] == " ", out.last == " " { i += 1 }
                continue
            }
            if u == "*", i + 1 < s.count, s[i + 1] == "*" {
                // **71a** style marginal page numbers vanish; other bold text keeps its words.
                if let end = pageNumberEnd(s, from: i + 2) {
                    i = end
                    while i < s.count, s[i] == " ", out.last == " " || out.isEmpty { i += 1 }
                    continue
                }
                i += 2
                continue
            }
            if u == "*" || (u == "_" && (i == 0 || s[i - 1] == " " || i + 1 == s.count || s[i + 1] == " " || s[i + 1] == "," || s[i + 1] == ".")) {
                i += 1   // emphasis
                continue
            }
            if u == "\\", i + 1 < s.count, "*_[]()#\\`".unicodeScalars.contains(s[i + 1]) {
                out.append(s[i + 1])
                i += 2
                continue
            }
            if u == "]", i + 1 < s.count, s[i + 1] == "(", let close = s[(i + 1)...].firstIndex(of: ")") {
                i = close + 1   // [text](target) keeps its text
                continue
            }
            if u == "[" , i + 1 < s.count, s[(i + 1)...].contains("]"), s[(i + 1)...].firstIndex(of: "]").map({ $0 + 1 < s.count && s[$0 + 1] == "(" }) == true {
                i += 1
                continue
            }
            out.append(u)
            i += 1
        }
        return String(out)
    }

    /// If `s[from...]` is digits, an optional a/b and "**", the index after it.
    private static func pageNumberEnd(_ s: [Unicode.Scalar], from: Int) -> Int? {
        var j = from
        while j < s.count, ("0"..."9").contains(s[j]) { j += 1 }
        guard j > from else { return nil }
        if j < s.count, s[j] == "a" || s[j] == "b" { j += 1 }
        guard j + 1 < s.count, s[j] == "*", s[j + 1] == "*" else { return nil }
        return j + 2
    }
}
