import CSLMKernels

/// Broadcasting add, subtract and multiply, and scaling by a constant.
enum BinaryOp {
    case add, sub, mul

    var name: String {
        switch self {
        case .add: "add"
        case .sub: "sub"
        case .mul: "mul"
        }
    }

    func kernel(_ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        switch self {
        case .add: slm_add(Int64(n), a, b, y)
        case .sub: slm_sub(Int64(n), a, b, y)
        case .mul: slm_mul(Int64(n), a, b, y)
        }
    }

    func scalar(_ a: Float, _ b: Float) -> Float {
        switch self {
        case .add: a + b
        case .sub: a - b
        case .mul: a * b
        }
    }
}

/// How a shape sits inside a broadcast result.
enum BroadcastLayout {
    case same                 // identical shapes
    case rowVector(Int)       // the shape equals the result's trailing elements (e.g. a bias)
    case general

    init(_ shape: Shape, in out: Shape) {
        if shape == out {
            self = .same
            return
        }
        var dims = shape.dims[...]
        while dims.first == 1 && dims.count > 1 { dims = dims.dropFirst() }
        if dims.count <= out.rank && Array(out.dims.suffix(dims.count)) == Array(dims) {
            self = .rowVector(shape.count)
        } else {
            self = .general
        }
    }
}

/// Strides of `shape` inside the broadcast `out` (0 along broadcast axes).
func broadcastStrides(_ shape: Shape, in out: Shape) -> [Int] {
    let pad = out.rank - shape.rank, s = shape.strides
    return (0..<out.rank).map { i in i < pad || shape.dims[i - pad] == 1 ? 0 : s[i - pad] }
}

/// Visits every element of `out` with the matching offsets in two broadcast operands.
func forEachBroadcast(_ out: Shape, _ sa: [Int], _ sb: [Int], _ body: (Int, Int, Int) -> Void) {
    let rank = out.rank
    var index = [Int](repeating: 0, count: rank)
    var oa = 0, ob = 0
    for i in 0..<out.count {
        body(i, oa, ob)
        var d = rank - 1
        while d >= 0 {
            index[d] += 1
            oa += sa[d]
            ob += sb[d]
            if index[d] < out.dims[d] { break }
            oa -= sa[d] * out.dims[d]
            ob -= sb[d] * out.dims[d]
            index[d] = 0
            d -= 1
        }
    }
}

/// The forward computation of a broadcasting binary op, outside autograd.
func broadcastBinary(_ a: Tensor, _ b: Tensor, _ op: BinaryOp) -> Tensor {
    let outShape = checked { () throws(ShapeError) in try Shape.broadcast(a.shape, b.shape, op: op.name) }
    let out = Tensor(uninitialized: outShape)
    let pa = a.data, pb = b.data, py = out.data
    switch (BroadcastLayout(a.shape, in: outShape), BroadcastLayout(b.shape, in: outShape)) {
    case (.same, .same):
        Kernels.elements(out.count) { s, n in op.kernel(n, pa + s, pb + s, py + s) }
    case (.same, .rowVector(let cols)):
        Kernels.rows(out.count / cols, cols: cols) { r0, rows in
            for r in r0..<(r0 + rows) { op.kernel(cols, pa + r * cols, pb, py + r * cols) }
        }
    case (.rowVector(let cols), .same) where op != .sub:
        Kernels.rows(out.count / cols, cols: cols) { r0, rows in
            for r in r0..<(r0 + rows) { op.kernel(cols, pb + r * cols, pa, py + r * cols) }
        }
    default:
        let sa = broadcastStrides(a.shape, in: outShape), sb = broadcastStrides(b.shape, in: outShape)
        forEachBroadcast(outShape, sa, sb) { i, oa, ob in py[i] = op.scalar(pa[oa], pb[ob]) }
    }
    return out
}

/// target's gradient += alpha * (g summed down to target's shape), g having the broadcast shape.
func accumulateReduced(_ g: Tensor, alpha: Float, into target: Tensor) {
    let pg = g.data
    switch BroadcastLayout(target.shape, in: g.shape) {
    case .same:
        target.accumulateGrad(g, alpha: alpha)
    case .rowVector(let cols):
        let pt = target.gradBuffer().data
        for r in 0..<(g.count / cols) { slm_axpy(Int64(cols), alpha, pg + r * cols, pt) }
    case .general:
        let pt = target.gradBuffer().data, st = broadcastStrides(target.shape, in: g.shape)
        forEachBroadcast(g.shape, st, st) { i, ot, _ in pt[ot] += alpha * pg[i] }
    }
}

func binaryOp(_ a: Tensor, _ b: Tensor, _ op: BinaryOp) -> Tensor {
    let out = broadcastBinary(a, b, op)
    let (sa, sb) = (a.detached(), b.detached())
    Autograd.record(out, op: op.name, inputs: [a, b]) { g in
        switch op {
        case .add, .sub:
            if a.requiresGrad { accumulateReduced(g, alpha: 1, into: a) }
            if b.requiresGrad { accumulateReduced(g, alpha: op == .add ? 1 : -1, into: b) }
        case .mul:
            if a.requiresGrad { accumulateReduced(broadcastBinary(g, sb, .mul), alpha: 1, into: a) }
            if b.requiresGrad { accumulateReduced(broadcastBinary(g, sa, .mul), alpha: 1, into: b) }
        }
    }
    return out
}

public func + (a: Tensor, b: Tensor) -> Tensor { binaryOp(a, b, .add) }
public func - (a: Tensor, b: Tensor) -> Tensor { binaryOp(a, b, .sub) }
public func * (a: Tensor, b: Tensor) -> Tensor { binaryOp(a, b, .mul) }

/// alpha * x
public func scale(_ x: Tensor, _ alpha: Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let px = x.data, py = out.data
    Kernels.elements(x.count) { s, n in slm_scale(Int64(n), alpha, px + s, py + s) }
    Autograd.record(out, op: "scale", inputs: [x]) { g in
        x.accumulateGrad(g, alpha: alpha)
    }
    return out
}

public func * (x: Tensor, alpha: Float) -> Tensor { scale(x, alpha) }
public func * (alpha: Float, x: Tensor) -> Tensor { scale(x, alpha) }
public prefix func - (x: Tensor) -> Tensor { scale(x, -1) }
