import Foundation

/// A dense, row-major, float32 tensor with optional gradient.
///
/// A tensor is a view of a `Storage` at an element `offset`; reshaping and slicing along
/// the first axis make views that share memory, other ops write new storage. Identity
/// matters (parameters, the autograd graph), so this is a class.
public final class Tensor {
    public let shape: Shape
    public let storage: Storage
    /// Offset of the first element in `storage`, in elements.
    public let offset: Int

    /// Whether gradients flow into this tensor. Set on parameters; ops set it on outputs.
    public var requiresGrad: Bool
    /// The accumulated gradient (leaves keep it across backward passes until zeroed).
    public internal(set) var grad: Tensor?
    /// The recorded op that produced this tensor, until backward frees it.
    var node: Node?
    /// False for tensors produced by recorded ops.
    public internal(set) var isLeaf = true

    public init(shape: Shape, storage: Storage, offset: Int = 0, requiresGrad: Bool = false) {
        precondition(offset >= 0 && offset + shape.count <= storage.count,
                     "Tensor: shape \(shape) at offset \(offset) exceeds storage of \(storage.count) elements")
        self.shape = shape
        self.storage = storage
        self.offset = offset
        self.requiresGrad = requiresGrad
    }

    /// Uninitialised-looking (actually zeroed) float32 tensor: the common output buffer.
    public convenience init(zeros shape: Shape, requiresGrad: Bool = false) {
        self.init(shape: shape, storage: Storage(count: shape.count), requiresGrad: requiresGrad)
    }

    /// A float32 tensor whose contents are undefined: for outputs a kernel writes in full.
    convenience init(uninitialized shape: Shape) {
        self.init(shape: shape, storage: Storage(count: shape.count, zeroed: false))
    }

    public convenience init(_ values: [Float], shape: Shape, requiresGrad: Bool = false) {
        precondition(values.count == shape.count,
                     "Tensor: \(values.count) values do not fill shape \(shape)")
        self.init(uninitialized: shape)
        self.requiresGrad = requiresGrad
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { data.update(from: base, count: values.count) }
        }
    }

    public convenience init(scalar: Float) { self.init([scalar], shape: []) }

    public static func zeros(_ shape: Shape, requiresGrad: Bool = false) -> Tensor {
        Tensor(zeros: shape, requiresGrad: requiresGrad)
    }

    public static func full(_ shape: Shape, _ value: Float, requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.requiresGrad = requiresGrad
        t.data.update(repeating: value, count: t.count)
        return t
    }

    public static func ones(_ shape: Shape, requiresGrad: Bool = false) -> Tensor {
        full(shape, 1, requiresGrad: requiresGrad)
    }

    /// Normal(mean, std) from the project's RNG: same seed, same numbers everywhere.
    public static func randn(_ shape: Shape, mean: Float = 0, std: Float = 1, rng: inout RNG,
                             requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.requiresGrad = requiresGrad
        let p = t.data
        for i in 0..<t.count { p[i] = Float(Double(mean) + Double(std) * rng.nextNormal()) }
        return t
    }

    /// Uniform in [low, high) from the project's RNG.
    public static func uniform(_ shape: Shape, low: Float = 0, high: Float = 1, rng: inout RNG,
                               requiresGrad: Bool = false) -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.requiresGrad = requiresGrad
        let p = t.data
        let width = Double(high) - Double(low)
        for i in 0..<t.count { p[i] = Float(Double(low) + width * rng.nextDouble()) }
        return t
    }

    public var count: Int { shape.count }
    public var rank: Int { shape.rank }
    public var dtype: DType { storage.dtype }
    public var device: Device { storage.device }

    /// Pointer to the first float32 element. Valid while the tensor is alive.
    public var data: UnsafeMutablePointer<Float> { storage.floats + offset }

    public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The single value of a one-element tensor.
    public func item() -> Float {
        precondition(count == 1, "item: tensor of shape \(shape) has \(count) elements, not 1")
        return data[0]
    }

    /// A tensor sharing this one's memory, outside the autograd graph.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage, offset: offset) }

    /// A deep copy outside the autograd graph.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// Clears the accumulated gradient, keeping its buffer for the next backward pass.
    public func zeroGrad() {
        if let g = grad { g.data.update(repeating: 0, count: g.count) }
    }

    /// Drops the gradient buffer entirely.
    public func clearGrad() { grad = nil }

    /// A copy in another dtype (float32 <-> bfloat16), outside the autograd graph.
    public func converted(to target: DType) -> Tensor {
        let out = Tensor(shape: shape, storage: Storage(count: count, dtype: target))
        switch (dtype, target) {
        case (.float32, .float32): out.data.update(from: data, count: count)
        case (.float32, .bfloat16):
            Kernels.floatToBFloat16(count: count, data, out.storage.halfWords + out.offset)
        case (.bfloat16, .float32):
            Kernels.bfloat16ToFloat(count: count, storage.halfWords + offset, out.data)
        default:
            fatalError("converted(to:): \(dtype) -> \(target) is not supported yet")
        }
        return out
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = toArray().prefix(8).map { String(format: "%.4f", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(shown)\(count > 8 ? ", …" : "")]\(requiresGrad ? ", requiresGrad" : ""))"
    }
}
