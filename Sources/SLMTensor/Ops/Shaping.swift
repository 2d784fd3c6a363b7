/// Reshape, transpose, slice, split and concatenate.
///
/// Reshape and slices along the first axis are views (no copy); the others copy, because
/// every kernel here expects contiguous rows.
extension Tensor {
    /// The same elements under another shape (one dimension may be -1). A view.
    public func reshaped(_ dims: [Int]) -> Tensor {
        let target = checked { () throws(ShapeError) in try Shape.resolving(dims, count: count, op: "reshape") }
        let out = Tensor(shape: target, storage: storage, offset: offset)
        Autograd.record(out, op: "reshape", inputs: [self]) { [self] g in
            accumulateGrad(g)
        }
        return out
    }

    /// Swaps two axes (copies).
    public func transposed(_ axis0: Int, _ axis1: Int) -> Tensor {
        let (a0, a1) = checked { () throws(ShapeError) in
            (try shape.axis(axis0, op: "transpose"), try shape.axis(axis1, op: "transpose"))
        }
        var dims = shape.dims
        dims.swapAt(a0, a1)
        let outShape = Shape(dims)
        var inStrides = shape.strides
        inStrides.swapAt(a0, a1)
        let out = Tensor(uninitialized: outShape)
        let px = data, py = out.data
        forEachBroadcast(outShape, inStrides, inStrides) { i, o, _ in py[i] = px[o] }
        Autograd.record(out, op: "transpose", inputs: [self]) { [self] g in
            let dx = gradBuffer().data, pg = g.data
            forEachBroadcast(outShape, inStrides, inStrides) { i, o, _ in dx[o] += pg[i] }
        }
        return out
    }

    /// Elements `range` along `axis`.
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = checked { () throws(ShapeError) -> Int in
            let ax = try shape.axis(axis, op: "slice")
            guard range.lowerBound >= 0, range.upperBound <= shape[ax] else {
                throw ShapeError("slice: range \(range) is outside 0..<\(shape[ax]) on axis \(axis) of \(shape)")
            }
            return ax
        }
        var dims = shape.dims
        dims[ax] = range.count
        let inner = shape.dims[(ax + 1)...].reduce(1, *)
        let outer = shape.dims[..<ax].reduce(1, *)
        let out: Tensor
        if outer == 1 {
            out = Tensor(shape: Shape(dims), storage: storage, offset: offset + range.lowerBound * inner)
        } else {
            out = Tensor(uninitialized: Shape(dims))
            copyBlocks(outer: outer, length: range.count * inner, from: data + range.lowerBound * inner,
                       stride: shape[ax] * inner, to: out.data, stride: range.count * inner)
        }
        Autograd.record(out, op: "slice", inputs: [self]) { [self] g in
            addBlocks(outer: outer, length: range.count * inner, from: g.data, stride: range.count * inner,
                      to: gradBuffer().data + range.lowerBound * inner, stride: shape[ax] * inner)
        }
        return out
    }

    /// Consecutive pieces of the given sizes along `axis`.
    public func split(_ sizes: [Int], axis: Int) -> [Tensor] {
        let ax = checked { () throws(ShapeError) -> Int in
            let ax = try shape.axis(axis, op: "split")
            guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == shape[ax] else {
                throw ShapeError("split: sizes \(sizes) do not add up to \(shape[ax]) on axis \(axis) of \(shape)")
            }
            return ax
        }
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(axis: ax, start..<(start + size))
        }
    }
}

/// Joins tensors along `axis`; all other dimensions must agree.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    let (ax, outShape) = checked { () throws(ShapeError) -> (Int, Shape) in
        guard let first = tensors.first else { throw ShapeError("concat: no tensors") }
        let ax = try first.shape.axis(axis, op: "concat")
        var total = 0
        for t in tensors {
            var a = t.shape.dims, b = first.shape.dims
            guard a.count == b.count else {
                throw ShapeError("concat: ranks differ for \(first.shape) and \(t.shape)")
            }
            a[ax] = 0
            b[ax] = 0
            guard a == b else {
                throw ShapeError("concat: shapes \(first.shape) and \(t.shape) differ outside axis \(axis)")
            }
            total += t.shape[ax]
        }
        var dims = first.shape.dims
        dims[ax] = total
        return (ax, Shape(dims))
    }
    let out = Tensor(uninitialized: outShape)
    let inner = outShape.dims[(ax + 1)...].reduce(1, *), outer = outShape.dims[..<ax].reduce(1, *)
    let rowLength = outShape[ax] * inner
    var start = 0
    for t in tensors {
        let length = t.shape[ax] * inner
        copyBlocks(outer: outer, length: length, from: t.data, stride: length, to: out.data + start, stride: rowLength)
        start += length
    }
    Autograd.record(out, op: "concat", inputs: tensors) { g in
        var start = 0
        for t in tensors {
            let length = t.shape[ax] * inner
            if t.requiresGrad {
                addBlocks(outer: outer, length: length, from: g.data + start, stride: rowLength,
                          to: t.gradBuffer().data, stride: length)
            }
            start += length
        }
    }
    return out
}

/// Copies `outer` blocks of `length` floats between strided positions.
func copyBlocks(outer: Int, length: Int, from src: UnsafePointer<Float>, stride srcStride: Int,
                to dst: UnsafeMutablePointer<Float>, stride dstStride: Int) {
    for o in 0..<outer { (dst + o * dstStride).update(from: src + o * srcStride, count: length) }
}

/// Adds `outer` blocks of `length` floats between strided positions.
func addBlocks(outer: Int, length: Int, from src: UnsafePointer<Float>, stride srcStride: Int,
               to dst: UnsafeMutablePointer<Float>, stride dstStride: Int) {
    for o in 0..<outer { Kernels.axpy(count: length, alpha: 1, src + o * srcStride, dst + o * dstStride) }
}
