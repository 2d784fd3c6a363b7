/// The dimensions of a tensor, outermost first. Row-major: the last dimension is
/// contiguous.
public struct Shape: Hashable, Sendable, ExpressibleByArrayLiteral, CustomStringConvertible {
    public var dims: [Int]

    public init(_ dims: [Int]) {
        precondition(dims.allSatisfy { $0 >= 0 }, "Shape: negative dimension in \(dims)")
        self.dims = dims
    }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    public var rank: Int { dims.count }
    /// Number of elements (1 for a scalar of rank 0).
    public var count: Int { dims.reduce(1, *) }
    public subscript(i: Int) -> Int { dims[i < 0 ? dims.count + i : i] }
    public var last: Int { dims.last ?? 1 }
    public var description: String { "[" + dims.map(String.init).joined(separator: ", ") + "]" }

    /// Row-major strides in elements.
    public var strides: [Int] {
        var s = [Int](repeating: 1, count: dims.count)
        var acc = 1
        for i in stride(from: dims.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= dims[i]
        }
        return s
    }

    /// Resolves a possibly negative axis, or explains why it is out of range.
    public func axis(_ a: Int, op: String) throws(ShapeError) -> Int {
        let r = a < 0 ? a + rank : a
        guard r >= 0 && r < rank else {
            throw ShapeError("\(op): axis \(a) is out of range for shape \(self)")
        }
        return r
    }

    /// NumPy broadcasting of two shapes.
    public static func broadcast(_ a: Shape, _ b: Shape, op: String) throws(ShapeError) -> Shape {
        let rank = max(a.rank, b.rank)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.rank ? 1 : a.dims[i - (rank - a.rank)]
            let db = i < rank - b.rank ? 1 : b.dims[i - (rank - b.rank)]
            guard da == db || da == 1 || db == 1 else {
                throw ShapeError("\(op): shapes \(a) and \(b) cannot be broadcast together")
            }
            out[i] = da == 1 ? db : da
        }
        return Shape(out)
    }

    /// The shape `dims` describes for `count` elements, with at most one -1 inferred.
    public static func resolving(_ dims: [Int], count: Int, op: String) throws(ShapeError) -> Shape {
        let unknown = dims.filter { $0 == -1 }.count
        guard unknown <= 1 else { throw ShapeError("\(op): more than one -1 in \(dims)") }
        guard dims.allSatisfy({ $0 >= -1 }) else { throw ShapeError("\(op): invalid dimensions \(dims)") }
        let known = dims.filter { $0 != -1 }.reduce(1, *)
        if unknown == 1 {
            guard known > 0, count % known == 0 else {
                throw ShapeError("\(op): cannot infer -1 in \(dims) for \(count) elements")
            }
            return Shape(dims.map { $0 == -1 ? count / known : $0 })
        }
        guard known == count else {
            throw ShapeError("\(op): shape \(Shape(dims)) holds \(known) elements, tensor has \(count)")
        }
        return Shape(dims)
    }
}

/// A shape mismatch, with a message naming the op and the shapes involved.
/// Ops stop with this message (shape errors are programming errors, like an index out of
/// range); the checks throw it so they can be tested and reused.
public struct ShapeError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Runs a shape check inside an op: a failed check stops with its message.
@inline(__always)
func checked<T>(_ body: () throws(ShapeError) -> T) -> T {
    do {
        return try body()
    } catch {
        fatalError(error.message)
    }
}
