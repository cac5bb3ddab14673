import MemoryModel

/// `--shard I/N`: the I-th of N deterministic shares of a sweep's points
/// (1-based; point index mod N == I-1; with `find:`, group index mod N, so
/// each search runs whole on one shard).
public struct Shard: Sendable, Equatable, CustomStringConvertible {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    /// Parses `I/N` with 1 <= I <= N.
    public static func parse(_ text: String) throws -> Shard {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw CocomemError(.invalidScenario, "--shard '\(text)' is not I/N (for example 1/4)")
        }
        guard n >= 1 else { throw CocomemError(.invalidScenario, "--shard '\(text)': N must be at least 1") }
        guard (1...n).contains(i) else { throw CocomemError(.invalidScenario, "--shard '\(text)': I must be between 1 and \(n)") }
        return Shard(index: i, count: n)
    }

    /// Whether unit `i` (a point, or a find group) belongs to this shard.
    public func contains(_ i: Int) -> Bool { i % count == index - 1 }

    public var description: String { "\(index)/\(count)" }
}
