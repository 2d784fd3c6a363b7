import ArgumentParser
import Foundation
import SLMGenerate
import SLMModels
import SLMSupport
import SLMVisual

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pictures of what a model does on a text: surprisal per token, attention maps, Monarch matrices, gates.",
        discussion: """
        Writes DIR/index.html (all pictures on one page), one SVG per picture, and inspection.json with the \
        numbers (token ids, surprisal in bits, attention probabilities per layer and head, Monarch matrices, \
        gate weights). Prompts longer than the context keep their last tokens; the pictures have one row and \
        column per token, so --max-tokens (default 64) keeps them readable.
        """)

    @Option(help: "Checkpoint or model folder.") var model: String
    @Option(help: "The text to read.") var prompt: String
    @Option(help: "Folder for the pictures (default: inspect-MODEL).") var out: String?
    @Option(help: "Tokens of the prompt to show at most (its last ones).") var maxTokens = 64
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        guard maxTokens >= 2 else { throw ValidationError("--max-tokens must be at least 2") }
        let bundle = try loadBundle(model)
        var (ids, dropped) = bundle.encodePrompt(prompt)
        if !dropped.isEmpty { printError("note: characters this model does not know were left out: \(dropped.keys.sorted().joined())") }
        guard ids.count >= 2 else { throw CommandError("the prompt must give at least 2 tokens (it gave \(ids.count))") }
        let keep = min(maxTokens, bundle.model.config.context)
        if ids.count > keep {
            printError("note: the prompt has \(ids.count) tokens; showing its last \(keep)")
            ids = Array(ids.suffix(keep))
        }
        let inspection = bundle.model.inspect(ids)
        let tokens = ids.map { id in
            String(decoding: bundle.tokenizer.tokenBytes(id) ?? [], as: UTF8.self).replacingOccurrences(of: " ", with: "·")
        }
        // "micro/best" says more than "best".
        let last = bundle.directory.standardizedFileURL.lastPathComponent
        let name = last == "best" || last.hasPrefix("ckpt-")
            ? bundle.directory.standardizedFileURL.deletingLastPathComponent().lastPathComponent + "/" + last : last
        let report = InspectionReport(model: name, tokens: tokens, surprisal: inspection.surprisal,
                                      attention: inspection.attention, monarch: inspection.monarch,
                                      gates: inspection.gates, gateNames: inspection.gateNames)
        let dir = URL(fileURLWithPath: out ?? "inspect-" + name.replacingOccurrences(of: "/", with: "-"))
        try userFacing {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for file in report.files() { try AtomicFile.write(Data(file.contents.utf8), to: dir.appendingPathComponent(file.name)) }
            try AtomicFile.write(try numbers(inspection, tokens: tokens), to: dir.appendingPathComponent("inspection.json"))
        }
        print(String(format: "%@: %d tokens, mean surprisal %.3f bits/token", name, ids.count, report.meanSurprisal))
        for (l, share) in report.localAttention(last: 4).enumerated() {
            print(String(format: "  attention layer %d: %.0f%% on the last 4 tokens", l, 100 * share))
        }
        for (l, means) in report.gateMeans.enumerated() {
            print("  gates layer \(l): " + zip(inspection.gateNames, means).map { String(format: "%@ %.3f", $0, $1) }.joined(separator: ", "))
        }
        print("wrote \(dir.path)/index.html")
    }

    private func numbers(_ i: Inspection, tokens: [String]) throws -> Data {
        let object: [String: Any] = [
            "ids": i.ids.map(Int.init), "tokens": tokens,
            "surprisal_bits": i.surprisal.map { $0.isFinite ? $0 : NSNull() as Any },
            "attention": i.attention, "monarch": i.monarch, "gates": i.gates, "gate_names": i.gateNames,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }
}
