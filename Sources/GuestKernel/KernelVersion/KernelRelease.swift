import MemoryModel

/// A Linux release as users write it: a mainline release (`6.12`, meaning
/// 6.12.0) or a stable point release (`6.12.30`).
public struct KernelRelease: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    /// The stable point release; nil when written as a mainline release.
    public var patch: Int?

    public init(_ major: Int, _ minor: Int, _ patch: Int? = nil) {
        self.major = major; self.minor = minor; self.patch = patch
    }

    /// The mainline release this one is based on (`6.12` for `6.12.30`).
    public var series: Series { Series(major: major, minor: minor) }
    /// The point release, 0 for a mainline release.
    public var point: Int { patch ?? 0 }

    /// As the user wrote it: `6.12` or `6.12.30`.
    public var description: String { patch.map { "\(major).\(minor).\($0)" } ?? "\(major).\(minor)" }
    /// `uname -r` without the local version: `6.12.0`, `6.12.30`.
    public var uname: String { "\(major).\(minor).\(point)" }

    public static func < (a: KernelRelease, b: KernelRelease) -> Bool {
        (a.major, a.minor, a.point) < (b.major, b.minor, b.point)
    }

    /// A mainline series (`6.12`); ordered by release.
    public struct Series: Sendable, Hashable, Comparable, CustomStringConvertible {
        public var major: Int, minor: Int
        public var description: String { "\(major).\(minor)" }
        public static func < (a: Series, b: Series) -> Bool { (a.major, a.minor) < (b.major, b.minor) }
    }

    /// The mainline releases the version table covers, oldest first: 6.5
    /// (the first with CONFIG_UNACCEPTED_MEMORY) to 7.1 (Linux went from 6.19
    /// to 7.0). A release after 7.1 is unknown, not assumed to be like 7.1.
    public static let knownSeries: [Series] =
        (5...19).map { Series(major: 6, minor: $0) } + (0...1).map { Series(major: 7, minor: $0) }

    /// Parses `MAJOR.MINOR` or `MAJOR.MINOR.PATCH` (decimal, no leading `v`,
    /// no distribution suffix) of a known series.
    /// - Throws: `CocomemError(.invalidArgument)` naming what is wrong and,
    ///   for an unknown series, the nearest known ones.
    /// - Complexity: O(length of `text`).
    public static func parse(_ text: String) throws -> KernelRelease {
        func bad(_ why: String) -> CocomemError {
            CocomemError(.invalidArgument, "kernel '\(text)' \(why)")
        }
        let examples = "write a mainline release such as 6.12 or a stable point release such as 6.12.30"
        if text.first == "v" || text.first == "V" {
            throw bad("starts with 'v': \(examples) (\(text.dropFirst()))")
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3 else { throw bad("is not a release: \(examples)") }
        var numbers: [Int] = []
        for p in parts {
            let digits = p.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count == p.count, digits.count <= 4, let n = Int(digits) else {
                if !digits.isEmpty, p.contains(where: { "-+_~".contains($0) }) {
                    throw bad("has a local version, release-candidate or distribution suffix; the table knows upstream releases only: \(examples)")
                }
                throw bad("is not a release: \(examples)")
            }
            numbers.append(n)
        }
        let r = KernelRelease(numbers[0], numbers[1], numbers.count == 3 ? numbers[2] : nil)
        guard knownSeries.contains(r.series) else {
            let nearest = nearestKnown(to: r.series).map(\.description).joined(separator: ", ")
            if r.series < knownSeries[0] {
                throw bad("is older than 6.5, the first release with unaccepted memory support (CONFIG_UNACCEPTED_MEMORY); nearest known: \(nearest)")
            }
            if r.series > knownSeries.last! {
                throw bad("is newer than the newest release the version table knows; nearest known: \(nearest)")
            }
            throw bad("is not a Linux release; nearest known: \(nearest)")
        }
        return r
    }

    /// The two known series around `s`: the one just before and the one just
    /// after, or the two nearest on the side that has any (for errors).
    static func nearestKnown(to s: Series) -> [Series] {
        let below = knownSeries.filter { $0 < s }, above = knownSeries.filter { $0 > s }
        switch (below.last, above.first) {
        case let (b?, a?): return [b, a]
        case (nil, _): return Array(above.prefix(2))
        case (_, nil): return Array(below.suffix(2))
        }
    }
}
