/// Builds an SVG document as text: the few elements the charts and maps need.
struct SVGWriter {
    private var parts: [String]

    init(width: Double, height: Double) {
        parts = [#"<svg xmlns="http://www.w3.org/2000/svg" width="\#(f(width))" height="\#(f(height))" viewBox="0 0 \#(f(width)) \#(f(height))" font-family="sans-serif">"#,
                 #"<rect width="100%" height="100%" fill="white"/>"#]
    }

    mutating func raw(_ element: String) { parts.append(element) }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double) {
        parts.append(#"<line x1="\#(f(x1))" y1="\#(f(y1))" x2="\#(f(x2))" y2="\#(f(y2))"/>"#)
    }

    mutating func text(_ s: String, x: Double, y: Double, anchor: String, size: Double, weight: String? = nil,
                       fill: String = "#222", font: String? = nil) {
        let extra = (weight.map { #" font-weight="\#($0)""# } ?? "") + (font.map { #" font-family="\#($0)""# } ?? "")
        parts.append(#"<text x="\#(f(x))" y="\#(f(y))" font-size="\#(f(size))" text-anchor="\#(anchor)" fill="\#(fill)"\#(extra)>\#(SVGWriter.escape(s))</text>"#)
    }

    func finish() -> String { (parts + ["</svg>"]).joined(separator: "\n") + "\n" }

    /// Text and attribute values: XML's five special characters, and control characters
    /// (not allowed in XML 1.0) as a visible placeholder.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n": out += "⏎"
            case "\t": out += " "
            default: out.unicodeScalars.append(ch.value < 0x20 || ch.value == 0x7F || (0xFFFE...0xFFFF).contains(ch.value) ? "�" : ch)
            }
        }
        return out
    }
}
