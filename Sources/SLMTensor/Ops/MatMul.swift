import CSLMKernels

/// Shapes and leading dimensions of one (batched) matrix multiply, with its forward and
/// both backward products. Transposes are BLAS flags, never copies.
struct MatmulPlan {
    let batch, m, n, k: Int
    let transA, transB: Bool
    /// B is one matrix shared by every batch entry (a weight).
    let sharedB: Bool
    let outShape: Shape

    init(_ a: Shape, _ b: Shape, transA: Bool, transB: Bool) throws(ShapeError) {
        let op = "matmul"
        guard a.rank >= 2, b.rank >= 2 else {
            throw ShapeError("\(op): operands need rank >= 2, got \(a) and \(b)")
        }
        let batchDims = Array(a.dims.dropLast(2))
        m = transA ? a[-1] : a[-2]
        k = transA ? a[-2] : a[-1]
        let kb = transB ? b[-1] : b[-2]
        n = transB ? b[-2] : b[-1]
        guard k == kb else {
            throw ShapeError("\(op): inner dimensions differ (\(k) vs \(kb)) for \(a)\(transA ? "ᵀ" : "") × \(b)\(transB ? "ᵀ" : "")")
        }
        sharedB = b.rank == 2
        guard sharedB || Array(b.dims.dropLast(2)) == batchDims else {
            throw ShapeError("\(op): batch dimensions differ for \(a) and \(b)")
        }
        batch = batchDims.reduce(1, *)
        self.transA = transA
        self.transB = transB
        outShape = Shape(batchDims + [m, n])
    }

    private var lda: Int { transA ? m : k }
    private var ldb: Int { transB ? k : n }
    /// With a shared B and a plain A, the batch folds into the rows of one GEMM.
    private var foldsBatch: Bool { sharedB && !transA }

    func forward(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
        if foldsBatch {
            Gemm.sgemm(transA: false, transB: transB, m: batch * m, n: n, k: k,
                       a: a, lda: k, b: b, ldb: ldb, c: c, ldc: n)
        } else {
            Gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                       c: c, ldc: n, batch: batch, strideA: m * k, strideB: sharedB ? 0 : k * n,
                       strideC: m * n)
        }
    }

    /// dA += gradient w.r.t. A, given dC.
    func backwardA(_ dc: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ da: UnsafeMutablePointer<Float>) {
        if !transA {
            // dA[m,k] = dC[m,n] · op(B)ᵀ
            Gemm.sgemm(transA: false, transB: !transB, m: foldsBatch ? batch * m : m, n: k, k: n,
                       a: dc, lda: n, b: b, ldb: ldb, beta: 1, c: da, ldc: k,
                       batch: foldsBatch ? 1 : batch, strideA: m * n, strideB: sharedB ? 0 : k * n,
                       strideC: m * k)
        } else {
            // A is stored [k,m]: dA = op(B) · dCᵀ
            Gemm.sgemm(transA: transB, transB: true, m: k, n: m, k: n, a: b, lda: ldb, b: dc, ldb: n,
                       beta: 1, c: da, ldc: m, batch: batch, strideA: sharedB ? 0 : k * n,
                       strideB: m * n, strideC: m * k)
        }
    }

    /// dB += gradient w.r.t. B, given dC.
    func backwardB(_ dc: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ db: UnsafeMutablePointer<Float>) {
        if foldsBatch {
            if !transB {  // dB[k,n] = Aᵀ · dC over all rows
                Gemm.sgemm(transA: true, transB: false, m: k, n: n, k: batch * m,
                           a: a, lda: k, b: dc, ldb: n, beta: 1, c: db, ldc: n)
            } else {      // dB[n,k] = dCᵀ · A over all rows
                Gemm.sgemm(transA: true, transB: false, m: n, n: k, k: batch * m,
                           a: dc, lda: n, b: a, ldb: k, beta: 1, c: db, ldc: k)
            }
            return
        }
        // A shared B with a transposed A accumulates batch by batch into one matrix.
        let calls = sharedB ? batch : 1
        let perCall = sharedB ? 1 : batch
        for i in 0..<calls {
            let ai = a + i * m * k, dci = dc + i * m * n
            if !transB {  // dB[k,n] = op(A)ᵀ · dC
                Gemm.sgemm(transA: !transA, transB: false, m: k, n: n, k: m, a: ai, lda: lda, b: dci, ldb: n,
                           beta: 1, c: db, ldc: n, batch: perCall, strideA: m * k, strideB: m * n,
                           strideC: k * n)
            } else {      // dB[n,k] = dCᵀ · op(A)
                Gemm.sgemm(transA: true, transB: transA, m: n, n: k, k: m, a: dci, lda: n, b: ai, ldb: lda,
                           beta: 1, c: db, ldc: k, batch: perCall, strideA: m * n, strideB: m * k,
                           strideC: k * n)
            }
        }
    }
}

/// Matrix product of the last two axes: a [..., M, K] × b [..., K, N] (or b [K, N] shared
/// across the batch) → [..., M, N]. `transposeA`/`transposeB` read the operand's last two
/// axes swapped, without copying.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
    let plan = checked { () throws(ShapeError) in
        try MatmulPlan(a.shape, b.shape, transA: transposeA, transB: transposeB)
    }
    let out = Tensor(uninitialized: plan.outShape)
    plan.forward(a.data, b.data, out.data)
    let flops = 2 * Double(plan.batch * plan.m) * Double(plan.n * plan.k)
    let products = (a.requiresGrad ? 1.0 : 0) + (b.requiresGrad ? 1.0 : 0)
    Autograd.record(out, op: "matmul", inputs: [a, b], flops: (flops, products * flops)) { g in
        if a.requiresGrad { plan.backwardA(g.data, b.data, a.gradBuffer().data) }
        if b.requiresGrad { plan.backwardB(g.data, a.data, b.gradBuffer().data) }
    }
    return out
}

/// The precision of the matrix products inside `linear`. With `.bf16`, the input, the
/// weight and the output gradient are rounded to bfloat16 just before each product, which
/// accumulates and writes fp32: weights, gradients and every other op stay fp32 (mixed
/// precision with fp32 master weights). Set it for a scope with
/// `MatmulPrecision.$current.withValue(.bf16) { … }`; the backward pass uses the precision
/// its forward ran at.
public enum MatmulPrecision: String, Sendable, Codable, CaseIterable {
    case fp32, bf16

    @TaskLocal public static var current: MatmulPrecision = .fp32
}

/// x [..., in] · weightᵀ + bias, with weight [out, in] (PyTorch's layout) and bias [out].
/// With `inputMajor`, weight is [in, out] and the product is x · weight (the layout of
/// GPT-2's Conv1D checkpoints); the transpose is a BLAS flag either way.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, inputMajor: Bool = false) -> Tensor {
    let (inF, outF) = checked { () throws(ShapeError) -> (Int, Int) in
        let inAxis = inputMajor ? 0 : 1
        guard weight.rank == 2, x.rank >= 1, x.shape.last == weight.shape[inAxis] else {
            throw ShapeError("linear: input \(x.shape) does not match weight \(weight.shape) (expects [..., \(weight.rank == 2 ? weight.shape[inAxis] : -1)])")
        }
        let outF = weight.shape[1 - inAxis]
        if let bias, bias.shape != [outF] {
            throw ShapeError("linear: bias \(bias.shape) does not match weight \(weight.shape)")
        }
        return (weight.shape[inAxis], outF)
    }
    let rows = x.count / max(inF, 1)
    let out = Tensor(uninitialized: Shape(Array(x.shape.dims.dropLast()) + [outF]))
    let precision = MatmulPrecision.current
    let gemm = PrecisionGemm(precision: precision)
    // bf16 copies are made once per forward and kept for the backward products.
    let xs = gemm.operand(x), ws = gemm.operand(weight)
    let px = xs.pointer, pw = ws.pointer, py = out.data
    let ldw = inputMajor ? outF : inF
    gemm.run(transA: false, transB: !inputMajor, m: rows, n: outF, k: inF, a: px, lda: inF, b: pw, ldb: ldw,
             beta: 0, c: py, ldc: outF)
    if let bias {
        let pb = bias.data
        Kernels.rows(rows, cols: outF) { r0, n in
            slm_add_rowvec(Int64(n), Int64(outF), py + r0 * outF, pb, py + r0 * outF)
        }
    }
    let flops = 2 * Double(rows) * Double(inF * outF)
    let products = (x.requiresGrad ? 1.0 : 0) + (weight.requiresGrad ? 1.0 : 0)
    Autograd.record(out, op: "linear", inputs: [x, weight] + (bias.map { [$0] } ?? []), flops: (flops, products * flops)) { g in
        let gs = gemm.operand(g)
        let pg = gs.pointer
        withExtendedLifetime((xs, ws, gs)) {
            if x.requiresGrad {  // dX[rows, in] = dY · W  (W read as [out, in])
                let (dx, fresh) = x.gradBufferForWriting()
                gemm.run(transA: false, transB: inputMajor, m: rows, n: inF, k: outF, a: pg, lda: outF, b: pw,
                         ldb: ldw, beta: fresh ? 0 : 1, c: dx.data, ldc: inF)
            }
            if weight.requiresGrad {
                if inputMajor {  // dW[in, out] = Xᵀ · dY
                    gemm.run(transA: true, transB: false, m: inF, n: outF, k: rows, a: px, lda: inF, b: pg,
                             ldb: outF, beta: 1, c: weight.gradBuffer().data, ldc: outF)
                } else {         // dW[out, in] = dYᵀ · X
                    gemm.run(transA: true, transB: false, m: outF, n: inF, k: rows, a: pg, lda: outF, b: px,
                             ldb: inF, beta: 1, c: weight.gradBuffer().data, ldc: inF)
                }
            }
        }
        if let bias, bias.requiresGrad {
            columnSums(g.data, rows: rows, cols: outF, into: bias.gradBuffer().data)
        }
    }
    return out
}

/// A GEMM at one precision, over operands prepared for it by `operand(_:)`.
private struct PrecisionGemm {
    let precision: MatmulPrecision

    /// A matrix as the products read it: the tensor's own fp32 data, or a bf16 copy
    /// (`owner` keeps the copy alive).
    struct Operand {
        let pointer: UnsafeRawPointer
        let owner: AnyObject
    }

    func operand(_ t: Tensor) -> Operand {
        switch precision {
        case .fp32:
            return Operand(pointer: UnsafeRawPointer(t.data), owner: t)
        case .bf16:
            let copy = Storage(count: t.count, dtype: .bfloat16, zeroed: false)
            let narrow = copy.raw.assumingMemoryBound(to: UInt16.self)
            Kernels.floatToBFloat16(count: t.count, t.data, narrow)
            return Operand(pointer: UnsafeRawPointer(narrow), owner: copy)
        }
    }

    func run(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafeRawPointer, lda: Int,
             b: UnsafeRawPointer, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        switch precision {
        case .fp32:
            Gemm.sgemm(transA: transA, transB: transB, m: m, n: n, k: k,
                       a: a.assumingMemoryBound(to: Float.self), lda: lda,
                       b: b.assumingMemoryBound(to: Float.self), ldb: ldb, beta: beta, c: c, ldc: ldc)
        case .bf16:
            Gemm.gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k,
                          a: a.assumingMemoryBound(to: UInt16.self), lda: lda,
                          b: b.assumingMemoryBound(to: UInt16.self), ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
    }
}

/// into[c] += Σ_r x[r, c], with per-thread partial sums.
func columnSums(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into: UnsafeMutablePointer<Float>) {
    let grain = max(1, 16_384 / max(cols, 1))
    let chunks = Parallel.chunkCount(rows, grain: grain)
    guard chunks > 1 else {
        slm_colsum_acc(Int64(rows), Int64(cols), x, into)
        return
    }
    let partial = Tensor(zeros: [chunks, cols])
    withExtendedLifetime(partial) {
        let pp = partial.data
        _ = Parallel.forChunks(rows, grain: grain) { c, r in
            slm_colsum_acc(Int64(r.count), Int64(cols), x + r.lowerBound * cols, pp + c * cols)
        }
        slm_colsum_acc(Int64(chunks), Int64(cols), pp, into)
    }
}
