/// The project's random number generator: xoshiro256** seeded through SplitMix64.
///
/// Everything is integer arithmetic or IEEE-exact float operations (+, *, /, sqrt),
/// including its own logarithm, so the same seed gives bit-identical numbers on every
/// platform and compiler, unlike generators that lean on the C library's `log`/`cos`.
public struct RNG: RandomNumberGenerator, Sendable, Codable, Equatable {
    public private(set) var state: [UInt64]

    public init(seed: UInt64) {
        var x = seed
        var s = [UInt64]()
        for _ in 0..<4 {
            // SplitMix64
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            s.append(z ^ (z >> 31))
        }
        state = s
    }

    /// Restores a generator from a saved `state` (four words).
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "RNG: invalid saved state")
        self.state = state
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = RNG.rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = RNG.rotl(state[3], 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal (Marsaglia's polar method; needs only log and sqrt).
    public mutating func nextNormal() -> Double {
        while true {
            let u = 2 * nextDouble() - 1, v = 2 * nextDouble() - 1
            let s = u * u + v * v
            if s > 0 && s < 1 {
                return u * (-2 * RNG.log(s) / s).squareRoot()
            }
        }
    }

    /// Natural logarithm from +, *, / only: x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
    /// log m = 2 atanh((m-1)/(m+1)) as a series accurate to double precision there.
    static func log(_ x: Double) -> Double {
        precondition(x > 0 && x.isFinite, "RNG.log: argument must be positive and finite")
        var m = x.significand  // in [1, 2)
        var e = Double(x.exponent)
        if m > 1.4142135623730951 {
            m /= 2
            e += 1
        }
        let z = (m - 1) / (m + 1), z2 = z * z
        var term = z, sum = 0.0
        var k = 1.0
        while k < 40 {
            sum += term / k
            term *= z2
            k += 2
        }
        return 2 * sum + e * 0.6931471805599453
    }
}
