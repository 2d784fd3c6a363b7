import CSLMKernels
import Foundation
import SLMTensor

/// Several generations of one model stepped together (a server's concurrent streams): each
/// weight matrix is read once per step for all of them, as one product over their rows,
/// instead of once per stream. A stream may bring several tokens (a chunk of its prompt):
/// each token is a row at its own position. Attention (or the Monarch/Symbio mixer) runs
/// per row on its stream's own cache or state (attention: every row's heads as the tasks
/// of one parallel region); a mixture of experts multiplies each expert once for the rows
/// routed to it. All matrices go through the decode pool's batched GEMV, which reads a
/// block of weight rows once for every row of the step (fp32: a register tile of 4 weight
/// rows by several streams).
extension IncrementalDecoder {
    /// Reads `tokens[i]` into `decoders[i]` (all built on the same weights, each with room
    /// left) and returns each one's logits for the next token, valid until its next call.
    public static func step(_ decoders: [IncrementalDecoder], tokens: [Int32]) -> [UnsafeBufferPointer<Float>] {
        precondition(decoders.count == tokens.count, "step: one token per decoder")
        return read(decoders, chunks: tokens.map { [$0] })
    }

    /// Reads `chunks[i]` (at least one token) into `decoders[i]` in one batched step, every
    /// token a row, and returns each decoder's logits after its chunk's last token, valid
    /// until its next call. The decoders must be distinct and share their weights.
    public static func read(_ decoders: [IncrementalDecoder], chunks: [[Int32]]) -> [UnsafeBufferPointer<Float>] {
        precondition(decoders.count == chunks.count, "read: one chunk per decoder")
        guard let first = decoders.first else { return [] }
        let w = first.weights
        let rows = chunks.reduce(0) { $0 + $1.count }
        guard rows > 1, canBatch(w), decoders.allSatisfy({ $0.weights === w }) else {
            return zip(decoders, chunks).map { $0.prefill($1) }
        }
        precondition(Set(decoders.map(ObjectIdentifier.init)).count == decoders.count, "read: a decoder appears twice")
        for (d, chunk) in zip(decoders, chunks) {
            precondition(!chunk.isEmpty && d.length + chunk.count <= d.capacity,
                         "decoder: \(d.length) cached + \(chunk.count) new tokens exceed the context of \(d.capacity)")
            for t in chunk { precondition(t >= 0 && Int(t) < d.config.vocabSize, "decoder: token \(t) outside the vocabulary") }
        }
        BatchStep(decoders, chunks).run()
        for (d, chunk) in zip(decoders, chunks) {
            d.length += chunk.count
            d.readInBatches = false
        }
        return decoders.map { UnsafeBufferPointer(start: $0.logits.pointer, count: $0.config.vocabSize) }
    }

    /// Every decoder the registry's architectures make steps batched (kept as the one place
    /// to say otherwise for a future kind of block).
    static func canBatch(_ w: DecodingWeights) -> Bool { true }
}

/// One batched step's activations, [rows, features] row-major, and the work on them.
private struct BatchStep {
    let decoders: [IncrementalDecoder]
    /// Each row's token, stream (index into `decoders`) and position; a stream's rows are
    /// consecutive and in order.
    let tokens: [Int32]
    let streams: [Int]
    let positions: [Int]
    /// The row of each stream's last token (whose logits are kept).
    let lastRows: [Int]
    let w: DecodingWeights
    let n, d, qkvWidth, ldk: Int
    let x, h, qkv, attended, hidden, up, stats, stats2, lastH, logits, scores: AlignedBuffer<Float>
    /// A mixture of experts: the router's logits, and one expert's rows gathered.
    let routerLogits, gathered, expertOut: AlignedBuffer<Float>

    init(_ decoders: [IncrementalDecoder], _ chunks: [[Int32]]) {
        self.decoders = decoders
        var tokens: [Int32] = [], streams: [Int] = [], positions: [Int] = [], lastRows: [Int] = []
        for (i, (dec, chunk)) in zip(decoders, chunks).enumerated() {
            for (j, t) in chunk.enumerated() {
                tokens.append(t)
                streams.append(i)
                positions.append(dec.length + j)
            }
            lastRows.append(tokens.count - 1)
        }
        (self.tokens, self.streams, self.positions, self.lastRows) = (tokens, streams, positions, lastRows)
        w = decoders[0].weights
        n = tokens.count
        d = w.config.width
        let c = w.config
        qkvWidth = d + 2 * c.kvHeads * c.headSize
        ldk = (c.context + 63) / 64 * 64
        (x, h, attended) = (AlignedBuffer(count: n * d), AlignedBuffer(count: n * d), AlignedBuffer(count: n * d))
        qkv = AlignedBuffer(count: n * qkvWidth)
        (hidden, up) = (AlignedBuffer(count: n * c.ffnWidth), AlignedBuffer(count: n * c.ffnWidth))
        (stats, stats2) = (AlignedBuffer(count: n), AlignedBuffer(count: n))
        lastH = AlignedBuffer(count: decoders.count * d)
        logits = AlignedBuffer(count: decoders.count * c.vocabSize, zeroed: false)
        // Each row's own scores: a stream's rows attend in the same parallel region.
        scores = AlignedBuffer(count: w.block == .mixer ? 0 : n * c.heads * ldk, zeroed: false)
        routerLogits = AlignedBuffer(count: n * (c.experts ?? 0))
        (gathered, expertOut) = (AlignedBuffer(count: c.experts == nil ? 0 : n * d), AlignedBuffer(count: c.experts == nil ? 0 : n * d))
    }

    /// out[rows, m.rows] (+)= input[rows, inputs] · mᵀ (+ bias), for the first `rows` rows (all
    /// rows by default), through the decode pool's batched GEMV: each block of weight rows
    /// is read once for every input row. (oneDNN's GEMM was slower here: at these few rows
    /// it runs on one thread, 2,858 against 4,007 tokens/s for 16 llama-5m streams.)
    func project(_ m: DecodeMatrix, _ input: AlignedBuffer<Float>, _ out: AlignedBuffer<Float>, accumulate: Bool, rows: Int? = nil) {
        let rows = rows ?? n, inputs = Int(m.descriptor.inputs)
        withUnsafePointer(to: m.descriptor) {
            slm_decode_gemm(decoders[0].threads, $0, Int64(rows), input.pointer, Int64(inputs), out.pointer, Int64(m.rows), accumulate ? 1 : 0)
        }
    }

    /// out = down(silu(gate · input) ⊙ (up · input)) for the first `rows` rows.
    func swiGLU(_ m: DecodingWeights.SwiGLU, _ input: AlignedBuffer<Float>, _ out: AlignedBuffer<Float>, accumulate: Bool, rows: Int? = nil) {
        let rows = rows ?? n, f = w.config.ffnWidth
        project(m.gate, input, hidden, accumulate: false, rows: rows)
        project(m.up, input, up, accumulate: false, rows: rows)
        slm_swiglu_fwd(Int64(rows * f), hidden.pointer, up.pointer, hidden.pointer)
        if let norm = m.subNorm {  // BitNet's SubLN
            slm_rmsnorm_fwd(Int64(rows), Int64(f), hidden.pointer, norm.pointer, Float(w.config.normEps), up.pointer, stats.pointer)
            project(m.down, up, out, accumulate: accumulate, rows: rows)
            return
        }
        project(m.down, hidden, out, accumulate: accumulate, rows: rows)
    }

    /// Each stream's top experts by router logit (ties to the lower index), weighted by the
    /// softmax of the kept logits, as the decoder and the training layer route; each expert
    /// runs once on the rows of the streams routed to it.
    func mixtureOfExperts(_ e: DecodingWeights.Experts) {
        let count = e.experts.count
        project(e.router, h, routerLogits, accumulate: false)
        var routed = [[(stream: Int, weight: Float)]](repeating: [], count: count)
        for i in 0..<n {
            let logits = routerLogits.pointer + i * count
            var chosen: [Int] = []
            for _ in 0..<e.active {
                var best = -1
                for k in 0..<count where !chosen.contains(k) && (best < 0 || logits[k] > logits[best]) { best = k }
                chosen.append(best)
            }
            let top = logits[chosen[0]]
            let total = chosen.reduce(Float(0)) { $0 + exp(logits[$1] - top) }
            for k in chosen { routed[k].append((i, exp(logits[k] - top) / total)) }
        }
        for (k, streams) in routed.enumerated() where !streams.isEmpty {
            for (row, s) in streams.enumerated() { (gathered.pointer + row * d).update(from: h.pointer + s.stream * d, count: d) }
            swiGLU(e.experts[k], gathered, expertOut, accumulate: false, rows: streams.count)
            for (row, s) in streams.enumerated() { slm_axpy(Int64(d), s.weight, expertOut.pointer + row * d, x.pointer + s.stream * d) }
        }
    }

    /// LayerNorm (GPT-2) or RMSNorm (LLaMA) of the first `rows` rows (all by default).
    func norm(_ weight: AlignedBuffer<Float>, _ bias: AlignedBuffer<Float>?, _ input: AlignedBuffer<Float>, _ out: AlignedBuffer<Float>,
              rows: Int? = nil) {
        let eps = Float(w.config.normEps), rows = Int64(rows ?? n)
        if w.block == .gpt2 {
            slm_layernorm_fwd(rows, Int64(d), input.pointer, weight.pointer, bias?.pointer, eps, out.pointer, stats.pointer, stats2.pointer)
        } else {
            slm_rmsnorm_fwd(rows, Int64(d), input.pointer, weight.pointer, eps, out.pointer, stats.pointer)
        }
    }

    func run() {
        let c = w.config, vocab = c.vocabSize
        for (i, t) in tokens.enumerated() {
            let row = x.pointer + i * d
            row.update(from: w.tokenEmbedding.pointer + Int(t) * d, count: d)
            if let table = w.positionEmbedding { slm_add(Int64(d), row, table.pointer + positions[i] * d, row) }
        }
        for (layer, l) in w.layers.enumerated() {
            if let mixer = l.mixer {
                // Monarch/Symbio: each row's normed input goes into its stream's mixer state,
                // and the mixer steps there (O(√T·d) per Monarch layer), as the decoder does
                // alone; a stream's rows in order, so each position sees the ones before it.
                for i in 0..<n {
                    let state = decoders[streams[i]].mixerState!, memory = state.memory(layer: layer), pos = positions[i]
                    slm_rmsnorm_fwd(1, Int64(d), x.pointer + i * d, l.norm1.pointer, Float(c.normEps), memory.input(pos), stats.pointer)
                    memory.commit(pos..<(pos + 1))
                    mixer.step(memory, position: pos, into: attended.pointer + i * d)
                }
                slm_add(Int64(n * d), x.pointer, attended.pointer, x.pointer)
                norm(l.norm2, nil, x, h)
                swiGLU(l.swiGLU!, h, x, accumulate: true)
                continue
            }
            norm(l.norm1, l.norm1Bias, x, h)
            project(l.qkv!, h, qkv, accumulate: false)
            // Each row's query on its stream's cache at its own position, all in one region.
            // A row's key and value are stored before the region runs, so the later rows of
            // a chunk see the earlier ones (and no row sees a later one: n = position + 1).
            var queries: [slm_attention_decode_args] = []
            queries.reserveCapacity(n)
            for i in 0..<n {
                let q = qkv.pointer + i * qkvWidth, pos = positions[i]
                if let cosTable = w.ropeCos?.pointer, let sinTable = w.ropeSin?.pointer {
                    let k = q + d
                    slm_rope(1, 1, Int64(c.heads), Int64(c.headSize), Int64(pos), cosTable, sinTable, q, q, 0)
                    slm_rope(1, 1, Int64(c.kvHeads), Int64(c.headSize), Int64(pos), cosTable, sinTable, k, k, 0)
                }
                var args = decoders[streams[i]].attention(layer: layer, position: pos, qkv: q, out: attended.pointer + i * d)
                args.scores = scores.pointer + i * c.heads * ldk
                queries.append(args)
            }
            queries.withUnsafeBufferPointer { slm_decode_attention(decoders[0].threads, $0.baseAddress, Int64(n)) }
            if let subNorm = l.attentionSubNorm {  // BitNet's SubLN
                slm_rmsnorm_fwd(Int64(n), Int64(d), attended.pointer, subNorm.pointer, Float(c.normEps), h.pointer, stats.pointer)
                project(l.o!, h, x, accumulate: true)
            } else {
                project(l.o!, attended, x, accumulate: true)
            }
            norm(l.norm2, l.norm2Bias, x, h)
            if let m = l.swiGLU {
                swiGLU(m, h, x, accumulate: true)
            } else if let e = l.experts {
                mixtureOfExperts(e)
            } else {
                project(l.up!, h, hidden, accumulate: false)
                slm_gelu_fwd(Int64(n * c.ffnWidth), hidden.pointer, hidden.pointer)
                project(l.down!, hidden, x, accumulate: true)
            }
        }
        for (s, dec) in decoders.enumerated() {
            dec.mixerState?.advance(by: lastRows[s] - (s == 0 ? -1 : lastRows[s - 1]))
        }
        // Only each stream's last row needs logits: the head reads those rows alone.
        for (s, row) in lastRows.enumerated() { (x.pointer + s * d).update(from: x.pointer + row * d, count: d) }
        norm(w.finalNorm, w.finalNormBias, x, lastH, rows: decoders.count)
        project(w.head, lastH, logits, accumulate: false, rows: decoders.count)
        for (s, dec) in decoders.enumerated() { dec.logits.pointer.update(from: logits.pointer + s * vocab, count: vocab) }
    }
}
