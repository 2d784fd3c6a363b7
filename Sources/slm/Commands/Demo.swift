import ArgumentParser
import Foundation
import SLMGenerate
import SLMModels
import SLMTensor
import SLMText
import SLMTrain

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a tiny one-block character transformer for a few hundred steps and watch its loss fall.")

    @Option(help: "Text to learn from (default: the tiny Shakespeare file in ../shared/corpus/bench, else a built-in passage).")
    var text: String?

    @Option(help: "Optimizer steps.")
    var steps = 600

    @Option(help: "Sequences per step.")
    var batch = 16

    @Option(help: "Characters per sequence.")
    var context = 64

    @Option(help: "Learning rate.")
    var lr: Float = 3e-3

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard steps > 0, batch > 0, context > 1 else { throw ValidationError("steps, batch and context must be positive (context at least 2)") }
        guard lr > 0 else { throw ValidationError("--lr must be positive") }
    }

    func run() throws {
        try runtime.apply()
        let (source, corpus) = try loadText()
        let vocabulary = Array(Set(corpus)).sorted()
        let ids = Dictionary(uniqueKeysWithValues: vocabulary.enumerated().map { ($1, Int32($0)) })
        let tokens = corpus.map { ids[$0]! }
        guard tokens.count > context + 1 else {
            throw CommandError("the text has \(tokens.count) characters; it needs more than --context (\(context))")
        }

        let config = ModelConfig(architecture: .gpt2, vocabSize: vocabulary.count, layers: 1, heads: 4, width: 64, context: context)
        let model = try makeModel(config, seed: seed)
        let optimizer = AdamW(parameters: model.parameters.map(\.tensor), learningRate: lr, weightDecay: 0.01)
        print("text: \(source), \(tokens.count) characters, \(vocabulary.count) distinct")
        print("model: one-block transformer, \(model.parameterCount) parameters; \(Parallel.threadCount) threads, matmul on \(Gemm.backendName), kernels \(CPUKernels.activeISA)")
        print(String(format: "loss at start should be near ln(%d) = %.3f", vocabulary.count, log(Double(vocabulary.count))))

        var rng = RNG(seed: seed &+ 1)
        let start = Date()
        var first: Float = 0, recent: [Float] = []
        for step in 1...steps {
            var inputs: [Int32] = [], targets: [Int32] = []
            for _ in 0..<batch {
                let at = Int(rng.next() % UInt64(tokens.count - context - 1))
                inputs += tokens[at..<(at + context)]
                targets += tokens[(at + 1)...(at + context)]
            }
            optimizer.zeroGrad()
            let loss = model.loss(inputs: inputs, targets: targets, batch: batch, time: context)
            loss.backward()
            optimizer.update()
            let value = loss.item()
            guard value.isFinite else { throw CommandError("loss became \(value) at step \(step); try a smaller --lr") }
            if step == 1 { first = value }
            recent = Array((recent + [value]).suffix(20))
            if step == 1 || step % 25 == 0 || step == steps {
                let elapsed = Date().timeIntervalSince(start)
                let rate = Double(step * batch * context) / max(elapsed, 1e-9)
                print(String(format: "step %4d/%d  loss %.3f  (mean of last %d: %.3f)  %.0f tokens/s", step, steps, value,
                             recent.count, recent.reduce(0, +) / Float(recent.count), rate))
            }
        }
        let last = recent.reduce(0, +) / Float(recent.count)
        print(String(format: "loss fell from %.3f to %.3f in %.1f s", first, last, Date().timeIntervalSince(start)))
        print("sample: \(sample(model, vocabulary: vocabulary, prompt: Array(tokens.prefix(8)), seed: seed))")
    }

    private func loadText() throws -> (String, [Character]) {
        if let text {
            guard let contents = try? String(contentsOfFile: text, encoding: .utf8) else {
                throw CommandError("cannot read \(text) as UTF-8 text")
            }
            return (text, Array(contents))
        }
        let shared = "../shared/corpus/bench/tinyshakespeare.txt"
        if let contents = try? String(contentsOfFile: shared, encoding: .utf8) {
            return (shared, Array(contents))
        }
        return ("built-in passage", Array(String(repeating: Demo.passage, count: 4)))
    }

    /// Continues `prompt` for 120 characters, sampling at temperature 0.8.
    private func sample(_ model: any LanguageModel, vocabulary: [Character], prompt: [Int32], seed: UInt64) -> String {
        let tokenizer = CharTokenizer(characters: vocabulary)
        let options = GenerationOptions(maxTokens: 120, sampling: SamplingParameters(temperature: 0.8, seed: seed))
        let text = ((try? tokenizer.decode(prompt)) ?? "") + Generator(model: model, tokenizer: tokenizer).generate(prompt: prompt, options: options).text
        return text.replacingOccurrences(of: "\n", with: " ⏎ ")
    }

    private static let passage = """
    The unexamined life is not worth living, said the old teacher to the young men who gathered \
    in the market. They asked him what a good life was, and he answered with another question, as \
    was his habit. What is justice? What is courage? What is it to know a thing at all? Each answer \
    they gave he turned over like a stone, and found something beneath it they had not seen. \
    Geometry, he said, teaches the soul to look at what always is, and not at what comes to be and \
    passes away. A line has length without breadth; a point has no parts. \n
    """
}
