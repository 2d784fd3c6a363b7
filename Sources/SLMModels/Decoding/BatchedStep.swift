import CSLMKernels
import SLMTensor

/// Several generations of one model stepped together (a server's concurrent streams): each
/// weight matrix is read once per step for all of them, as one GEMM over their rows,
/// instead of once per stream; attention runs per stream against its own cache, at its own
/// position. fp32 GPT-2 and LLaMA (dense) weights take this path; the others (int8 and
/// ternary matrices, mixtures of experts, the attention-free mixers) step each decoder in turn.
extension IncrementalDecoder {
    /// Reads `tokens[i]` into `decoders[i]` (all built on the same weights, each with room
    /// left) and returns each one's logits for the next token, valid until its next call.
    public static func step(_ decoders: [IncrementalDecoder], tokens: [Int32]) -> [UnsafeBufferPointer<Float>] {
        precondition(decoders.count == tokens.count, "step: one token per decoder")
        guard let first = decoders.first else { return [] }
        let w = first.weights
        guard decoders.count > 1, canBatch(w), decoders.allSatisfy({ $0.weights === w }) else {
            return zip(decoders, tokens).map { $0.step($1) }
        }
        for (d, t) in zip(decoders, tokens) {
            precondition(d.length < d.capacity, "decoder: the context of \(d.capacity) tokens is full")
            precondition(t >= 0 && Int(t) < d.config.vocabSize, "decoder: token \(t) outside the vocabulary")
        }
        BatchStep(decoders, tokens).run()
        for d in decoders {
            d.length += 1
            d.readInBatches = false
        }
        return decoders.map { UnsafeBufferPointer(start: $0.logits.pointer, count: $0.config.vocabSize) }
    }

    static func canBatch(_ w: DecodingWeights) -> Bool {
        guard w.block != .mixer, w.head.denseWeights != nil else { return false }
        return w.layers.allSatisfy { l in
            l.experts == nil && l.attentionSubNorm == nil && l.qkv?.denseWeights != nil && l.o?.denseWeights != nil
                && (l.swiGLU.map { $0.gate.denseWeights != nil && $0.up.denseWeights != nil && $0.down.denseWeights != nil && $0.subNorm == nil }
                    ?? (l.up?.denseWeights != nil && l.down?.denseWeights != nil))
        }
    }
}

/// One batched step's activations, [streams, features] row-major, and the work on them.
private struct BatchStep {
    let decoders: [IncrementalDecoder]
    let tokens: [Int32]
    let w: DecodingWeights
    let n, d, qkvWidth: Int
    let x, h, qkv, attended, hidden, up, stats, stats2, logits: AlignedBuffer<Float>

    init(_ decoders: [IncrementalDecoder], _ tokens: [Int32]) {
        self.decoders = decoders
        self.tokens = tokens
        w = decoders[0].weights
        n = decoders.count
        d = w.config.width
        let c = w.config
        qkvWidth = d + 2 * c.kvHeads * c.headSize
        (x, h, attended) = (AlignedBuffer(count: n * d), AlignedBuffer(count: n * d), AlignedBuffer(count: n * d))
        qkv = AlignedBuffer(count: n * qkvWidth)
        (hidden, up) = (AlignedBuffer(count: n * c.ffnWidth), AlignedBuffer(count: n * c.ffnWidth))
        (stats, stats2) = (AlignedBuffer(count: n), AlignedBuffer(count: n))
        logits = AlignedBuffer(count: n * c.vocabSize, zeroed: false)
    }

    /// out[n, m.rows] (+)= input[n, m.cols] · mᵀ (+ bias).
    func project(_ m: DecodeMatrix, _ input: AlignedBuffer<Float>, _ out: AlignedBuffer<Float>, accumulate: Bool) {
        Gemm.sgemm(transA: false, transB: true, m: n, n: m.rows, k: m.cols, a: input.pointer, lda: m.cols, b: m.denseWeights!,
                   ldb: m.cols, beta: accumulate ? 1 : 0, c: out.pointer, ldc: m.rows)
        if let bias = m.biasValues { slm_add_rowvec(Int64(n), Int64(m.rows), out.pointer, bias, out.pointer) }
    }

    /// LayerNorm (GPT-2) or RMSNorm (LLaMA) of every row.
    func norm(_ weight: AlignedBuffer<Float>, _ bias: AlignedBuffer<Float>?, _ input: AlignedBuffer<Float>, _ out: AlignedBuffer<Float>) {
        let eps = Float(w.config.normEps)
        if w.block == .gpt2 {
            slm_layernorm_fwd(Int64(n), Int64(d), input.pointer, weight.pointer, bias?.pointer, eps, out.pointer, stats.pointer, stats2.pointer)
        } else {
            slm_rmsnorm_fwd(Int64(n), Int64(d), input.pointer, weight.pointer, eps, out.pointer, stats.pointer)
        }
    }

    func run() {
        let c = w.config, vocab = c.vocabSize
        for (i, (dec, t)) in zip(decoders, tokens).enumerated() {
            let row = x.pointer + i * d
            row.update(from: w.tokenEmbedding.pointer + Int(t) * d, count: d)
            if let positions = w.positionEmbedding { slm_add(Int64(d), row, positions.pointer + dec.length * d, row) }
        }
        for (layer, l) in w.layers.enumerated() {
            norm(l.norm1, l.norm1Bias, x, h)
            project(l.qkv!, h, qkv, accumulate: false)
            // Attention per stream, on its own cache and position.
            for (i, dec) in decoders.enumerated() {
                dec.qkv.pointer.update(from: qkv.pointer + i * qkvWidth, count: qkvWidth)
                if let cosTable = w.ropeCos?.pointer, let sinTable = w.ropeSin?.pointer {
                    let q = dec.qkv.pointer, k = q + d, pos = Int64(dec.length)
                    slm_rope(1, 1, Int64(c.heads), Int64(c.headSize), pos, cosTable, sinTable, q, q, 0)
                    slm_rope(1, 1, Int64(c.kvHeads), Int64(c.headSize), pos, cosTable, sinTable, k, k, 0)
                }
                dec.attend(layer: layer, position: dec.length)
                (attended.pointer + i * d).update(from: dec.attended.pointer, count: d)
            }
            project(l.o!, attended, x, accumulate: true)
            norm(l.norm2, l.norm2Bias, x, h)
            if let m = l.swiGLU {
                project(m.gate, h, hidden, accumulate: false)
                project(m.up, h, up, accumulate: false)
                slm_swiglu_fwd(Int64(n * c.ffnWidth), hidden.pointer, up.pointer, hidden.pointer)
                project(m.down, hidden, x, accumulate: true)
            } else {
                project(l.up!, h, hidden, accumulate: false)
                slm_gelu_fwd(Int64(n * c.ffnWidth), hidden.pointer, hidden.pointer)
                project(l.down!, hidden, x, accumulate: true)
            }
        }
        norm(w.finalNorm, w.finalNormBias, x, h)
        project(w.head, h, logits, accumulate: false)
        for (i, dec) in decoders.enumerated() { dec.logits.pointer.update(from: logits.pointer + i * vocab, count: vocab) }
    }
}
