import CSLMKernels
import Foundation
import SLMTensor

/// The three products a linear layer's training step makes.
enum GemmCase: String, Codable, CaseIterable {
    case forward      // Y[M,N] = X[M,K] · W[N,K]ᵀ        (NT)
    case inputGrad    // dX[M,K] = dY[M,N] · W[N,K]        (NN)
    case weightGrad   // dW[N,K] = dY[M,N]ᵀ · X[M,K]       (TN)

    var label: String {
        switch self {
        case .forward: "fwd NT"
        case .inputGrad: "dX NN"
        case .weightGrad: "dW TN"
        }
    }
}

struct GemmResult: Codable {
    var kind: GemmCase
    var m, n, k: Int
    var fp32GFlops, fp32Share: Double
    var bf16GFlops: Double
    /// nil where the CPU has no native bf16 dot product (no bf16 peak): a share of 0 is meaningless.
    var bf16Share: Double?
}

/// One linear layer with M rows, N outputs and K inputs.
struct GemmBench {
    let kind: GemmCase
    let m, n, k: Int

    func run(repeats: Int, peak: Peaks) -> GemmResult {
        var rng = RNG(seed: 1)
        let x = Tensor.randn([m, k], rng: &rng), w = Tensor.randn([n, k], rng: &rng), dy = Tensor.randn([m, n], rng: &rng)
        let x16 = x.converted(to: .bfloat16), w16 = w.converted(to: .bfloat16), dy16 = dy.converted(to: .bfloat16)
        let out = Tensor.zeros([max(m, n), max(n, k)])
        let flops = 2.0 * Double(m) * Double(n) * Double(k)

        let fp32 = medianSeconds(repeats: repeats) {
            switch kind {
            case .forward:
                Gemm.sgemm(transA: false, transB: true, m: m, n: n, k: k, a: x.data, lda: k, b: w.data, ldb: k, c: out.data, ldc: n)
            case .inputGrad:
                Gemm.sgemm(transA: false, transB: false, m: m, n: k, k: n, a: dy.data, lda: n, b: w.data, ldb: k, c: out.data, ldc: k)
            case .weightGrad:
                Gemm.sgemm(transA: true, transB: false, m: n, n: k, k: m, a: dy.data, lda: n, b: x.data, ldb: k, c: out.data, ldc: k)
            }
        }
        let h = { (t: Tensor) in UnsafePointer(t.storage.halfWords) }
        let bf16 = medianSeconds(repeats: repeats) {
            switch kind {
            case .forward:
                Gemm.gemmBF16(transA: false, transB: true, m: m, n: n, k: k, a: h(x16), lda: k, b: h(w16), ldb: k, c: out.data, ldc: n)
            case .inputGrad:
                Gemm.gemmBF16(transA: false, transB: false, m: m, n: k, k: n, a: h(dy16), lda: n, b: h(w16), ldb: k, c: out.data, ldc: k)
            case .weightGrad:
                Gemm.gemmBF16(transA: true, transB: false, m: n, n: k, k: m, a: h(dy16), lda: n, b: h(x16), ldb: k, c: out.data, ldc: k)
            }
        }
        let g32 = flops / fp32 / 1e9, g16 = flops / bf16 / 1e9
        return GemmResult(kind: kind, m: m, n: n, k: k, fp32GFlops: g32, fp32Share: g32 / max(peak.fp32GFlops, 1),
                          bf16GFlops: g16, bf16Share: peak.bf16GFlops > 0 ? g16 / peak.bf16GFlops : nil)
    }
}

struct AttentionResult: Codable {
    var forwardMs, backwardMs, totalMs, gflops, share: Double
}

struct AttentionBench {
    let batch, heads, time, headSize: Int

    func run(repeats: Int, peak: Peaks) -> AttentionResult {
        var rng = RNG(seed: 2)
        let q = Tensor.randn([batch, time, heads, headSize], rng: &rng, requiresGrad: true)
        let k = Tensor.randn([batch, time, heads, headSize], rng: &rng, requiresGrad: true)
        let v = Tensor.randn([batch, time, heads, headSize], rng: &rng, requiresGrad: true)
        let g = Tensor.randn([batch, time, heads, headSize], rng: &rng)
        let forward = medianSeconds(repeats: repeats) { _ = Autograd.noGrad { attention(q, k, v) } }
        let total = medianSeconds(repeats: repeats) {
            attention(q, k, v).backward(gradient: g)
        }
        // Causal work: 2 products forward (QKᵀ, PV) and 5 backward (QKᵀ again, dO·Vᵀ, dQ, dK, dV).
        let flops = 7 * causalAttentionProductFlops(batch: batch, queries: time, keys: time, heads: heads, headSize: headSize)
        let gf = flops / total / 1e9
        return AttentionResult(forwardMs: forward * 1e3, backwardMs: (total - forward) * 1e3, totalMs: total * 1e3,
                               gflops: gf, share: gf / max(peak.fp32GFlops, 1))
    }
}

struct MemoryResult: Codable {
    var name: String
    var ms, gbs, share: Double
}

/// A memory-bound kernel run the way the ops run it (rows split across threads).
struct MemoryBench {
    static let rows = 16_384, cols = 384

    let name: String
    /// Floats read plus floats written per element.
    let streams: Double
    let body: (_ r0: Int, _ n: Int, _ buffers: Buffers) -> Void

    struct Buffers {
        let x, y, dy, dx, w, b, mean, rstd: UnsafeMutablePointer<Float>
    }

    static var all: [MemoryBench] { [
        MemoryBench(name: "add", streams: 3) { r0, n, p in
            let o = r0 * cols
            slm_add(Int64(n * cols), p.x + o, p.dy + o, p.y + o)
        },
        MemoryBench(name: "gelu fwd", streams: 2) { r0, n, p in
            slm_gelu_fwd(Int64(n * cols), p.x + r0 * cols, p.y + r0 * cols)
        },
        MemoryBench(name: "gelu bwd", streams: 4) { r0, n, p in
            let o = r0 * cols
            slm_gelu_bwd(Int64(n * cols), p.x + o, p.dy + o, p.dx + o)
        },
        MemoryBench(name: "softmax fwd", streams: 2) { r0, n, p in
            slm_softmax_fwd(Int64(n), Int64(cols), p.x + r0 * cols, p.y + r0 * cols)
        },
        MemoryBench(name: "layerNorm fwd", streams: 2) { r0, n, p in
            slm_layernorm_fwd(Int64(n), Int64(cols), p.x + r0 * cols, p.w, p.b, 1e-5, p.y + r0 * cols, p.mean + r0, p.rstd + r0)
        },
        MemoryBench(name: "layerNorm bwd", streams: 4) { r0, n, p in
            let o = r0 * cols
            slm_layernorm_bwd(Int64(n), Int64(cols), p.x + o, p.w, p.mean + r0, p.rstd + r0, p.dy + o, p.dx + o, nil, nil)
        },
        MemoryBench(name: "rmsNorm fwd", streams: 2) { r0, n, p in
            slm_rmsnorm_fwd(Int64(n), Int64(cols), p.x + r0 * cols, p.w, 1e-5, p.y + r0 * cols, p.rstd + r0)
        },
        MemoryBench(name: "rmsNorm bwd", streams: 4) { r0, n, p in
            let o = r0 * cols
            slm_rmsnorm_bwd(Int64(n), Int64(cols), p.x + o, p.w, p.rstd + r0, p.dy + o, p.dx + o, nil)
        },
    ] }

    func run(repeats: Int, peak: Peaks) -> MemoryResult {
        let rows = MemoryBench.rows, cols = MemoryBench.cols
        var rng = RNG(seed: 3)
        let big = (0..<4).map { _ in Tensor.randn([rows, cols], rng: &rng) }
        let small = (0..<2).map { _ in Tensor.randn([cols], rng: &rng) }
        let stats = (0..<2).map { _ in Tensor.ones([rows]) }
        let buffers = Buffers(x: big[0].data, y: big[1].data, dy: big[2].data, dx: big[3].data, w: small[0].data,
                              b: small[1].data, mean: stats[0].data, rstd: stats[1].data)
        let seconds = withExtendedLifetime((big, small, stats)) {
            medianSeconds(repeats: repeats) {
                Parallel.forRanges(rows) { r in body(r.lowerBound, r.count, buffers) }
            }
        }
        let gbs = streams * Double(rows * cols * 4) / seconds / 1e9
        return MemoryResult(name: name, ms: seconds * 1e3, gbs: gbs, share: gbs / max(peak.memoryGBs, 1))
    }
}

struct HandoffResult: Codable {
    var gemmMs, loopMs, alternatingMs, overheadMs: Double
}

/// A GEMM followed at once by one of our parallel loops, as in a training step. If the
/// BLAS library's idle threads kept spinning, the loop after each GEMM would share its
/// cores with them: the alternating time would exceed the sum of the parts.
struct HandoffBench {
    func run(repeats: Int) -> HandoffResult {
        let m = 1024, n = 384, k = 384, inner = 50
        var rng = RNG(seed: 4)
        let x = Tensor.randn([m, k], rng: &rng), w = Tensor.randn([n, k], rng: &rng)
        let y = Tensor.zeros([m, n]), h = Tensor.randn([m, 4 * n], rng: &rng), out = Tensor.zeros([m, 4 * n])
        let gemm = { Gemm.sgemm(transA: false, transB: true, m: m, n: n, k: k, a: x.data, lda: k, b: w.data, ldb: k, c: y.data, ldc: n) }
        let loop = {
            let ph = h.data, po = out.data
            Parallel.forRanges(h.count, grain: 1 << 14) { r in slm_gelu_fwd(Int64(r.count), ph + r.lowerBound, po + r.lowerBound) }
        }
        let tg = medianSeconds(repeats: repeats) { for _ in 0..<inner { gemm() } } / Double(inner)
        let tl = medianSeconds(repeats: repeats) { for _ in 0..<inner { loop() } } / Double(inner)
        let both = medianSeconds(repeats: repeats) { for _ in 0..<inner { gemm(); loop() } } / Double(inner)
        return HandoffResult(gemmMs: tg * 1e3, loopMs: tl * 1e3, alternatingMs: both * 1e3, overheadMs: (both - tg - tl) * 1e3)
    }
}
