import ArgumentParser
import Foundation
import SLMTensor

/// The sequence mixers against causal attention, forward + backward on the same batch of
/// tokens at growing contexts, and the long convolution's direct form against its FFT form.
struct BenchMixers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mixers",
        abstract: "Time sequence mixers (attention, Monarch, Symbio, long convolution) at several contexts.",
        discussion: """
        Every case runs forward + backward on the same number of tokens (--tokens, split into \
        tokens/T sequences) at width --width. Attention is the full sublayer (Q/K/V and output \
        projections around fused causal attention with --heads heads) and, apart, its core; the \
        Monarch mixer is MonarchSLM's (4-tap convolution + causal Monarch + gate), the Symbio mixer \
        SymbioSLM's three organelles with the long convolution in its automatic form. Contexts must \
        be perfect squares. Parameters are per layer: the Monarch factors grow as T^1.5 and the long \
        convolution as T, attention's not at all.
        """)

    @Option(help: "Contexts T (comma separated perfect squares).") var contexts = "256,1024,4096"
    @Option(help: "Tokens per batch (each case runs tokens/T sequences).") var tokens = 16_384
    @Option(help: "Model width.") var width = 256
    @Option(help: "Attention and Monarch heads.") var heads = 4
    @Option(help: "Timed repeats (the median and best are reported).") var repeats = 3
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var runtime: RuntimeOptions

    struct Case: Codable {
        var name: String
        var context: Int
        var parameters: Int
        var medianMs: Double
        var bestMs: Double
    }

    func run() throws {
        try runtime.apply()
        let ts = try positiveIntegers(contexts, option: "--contexts")
        func blockSize(_ t: Int) -> Int { Int(Double(t).squareRoot().rounded()) }
        guard ts.allSatisfy({ blockSize($0) * blockSize($0) == $0 }) else {
            throw ValidationError("--contexts must be perfect squares (the Monarch mixer's p² = T), not \(contexts)")
        }
        guard repeats > 0, width % heads == 0, tokens > 0 else { throw ValidationError("need repeats > 0, tokens > 0 and width divisible by heads") }
        #if DEBUG
        if !json { print("warning: debug build; figures are meaningless. Use: swift run -c release slm bench mixers") }
        #endif
        if !json { print("machine: \(Parallel.threadCount) threads, kernels \(CPUKernels.activeISA); width \(width), \(heads) heads, \(tokens) tokens per batch; forward + backward, ms") }
        var cases: [Case] = []
        for T in ts {
            let B = max(1, tokens / T), d = width, p = blockSize(T)
            var rng = RNG(seed: 3)
            func param(_ shape: [Int], _ std: Float) -> Tensor { Tensor.randn(Shape(shape), std: std, rng: &rng, requiresGrad: true) }
            let x = Tensor.randn([B, T, d], rng: &rng, requiresGrad: true), g = Tensor.randn([B, T, d], rng: &rng)
            let wqkv = param([3 * d, d], 0.02), wo = param([d, d], 0.02)
            let conv = param([d, 4], 0.5), l1 = param([heads, p, p, p], 1 / Float(p).squareRoot())
            let l2 = param([heads, p, p, p], 1 / Float(p).squareRoot()), gate = param([d], 0.1)
            let long = param([d, T], 1 / Float(T)), gateLogits = param([3, d], 0.1)
            let hs = d / heads
            let q = Tensor.randn([B, T, heads, hs], rng: &rng, requiresGrad: true)
            let k = Tensor.randn([B, T, heads, hs], rng: &rng, requiresGrad: true)
            let v = Tensor.randn([B, T, heads, hs], rng: &rng, requiresGrad: true)
            let gq = Tensor.randn([B, T, heads, hs], rng: &rng)

            let attentionLayer = { () -> Tensor in
                let parts = linear(x, weight: wqkv).split([d, d, d], axis: 2).map { $0.reshaped([B, T, heads, hs]) }
                return linear(attention(parts[0], parts[1], parts[2]).reshaped([B, T, d]), weight: wo)
            }
            let monarch = { sigmoid(gate) * (causalConv(x, weight: conv) + monarchMix(x, l1: l1, l2: l2)) }
            let symbio = { () -> Tensor in
                let w = columnSoftmax(gateLogits).split([1, 1, 1], axis: 0).map { $0.reshaped([d]) }
                return w[0] * causalConv(x, weight: conv) + w[1] * monarchMix(x, l1: l1, l2: l2) + w[2] * causalConv(x, weight: long)
            }
            let monarchParameters = 2 * heads * p * p * p
            let runs: [(String, Int, () -> Void)] = [
                ("attention (projections + core)", 4 * d * d, { attentionLayer().backward(gradient: g) }),
                ("attention core", 0, { attention(q, k, v).backward(gradient: gq) }),
                ("Monarch mixer", monarchParameters + 5 * d, { monarch().backward(gradient: g) }),
                ("Symbio mixer", monarchParameters + 4 * d + d * T + 3 * d, { symbio().backward(gradient: g) }),
                ("long convolution, direct", d * T, { causalConv(x, weight: long, form: .direct).backward(gradient: g) }),
                ("long convolution, FFT", d * T, { causalConv(x, weight: long, form: .fft).backward(gradient: g) }),
            ]
            if !json { print("T = \(T) (\(B) sequences):") }
            for (name, parameters, body) in runs {
                let times = sampleSeconds(repeats: repeats) {
                    body()
                    for t in [x, q, k, v, wqkv, wo, conv, l1, l2, gate, long, gateLogits] { t.clearGrad() }
                }
                let c = Case(name: name, context: T, parameters: parameters, medianMs: times.median * 1e3, bestMs: times.best * 1e3)
                cases.append(c)
                if !json {
                    print("  " + name.padding(toLength: 32, withPad: " ", startingAt: 0)
                        + String(format: "%10.1f median %10.1f best   %9d parameters", c.medianMs, c.bestMs, c.parameters))
                }
            }
        }
        if json {
            try printJSON(cases)
        }
    }
}

/// Median and best of `repeats` timed runs after one warm-up run.
func sampleSeconds(repeats: Int, _ body: () -> Void) -> (median: Double, best: Double) {
    body()
    var times: [Double] = []
    for _ in 0..<repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
    }
    times.sort()
    return (times[times.count / 2], times[0])
}
