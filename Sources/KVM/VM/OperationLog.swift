/// The host model's operation log (`cocomem host --log`): one line per
/// operation KVM and the TDX module perform, in order. A long scenario
/// (`cycle RANGE N` writes about 1 KiB per round trip) must not hold it all
/// in memory, so the log either streams every line to `sink` as it is
/// produced and keeps none, or keeps the first `headLimit` and the last
/// `tailLimit` lines and counts the ones between, which `lines` reports in
/// one line where they were.
public struct OperationLog {
    /// Lines kept from the start of the run.
    public static let headLimit = 10_000
    /// Lines kept from the end of the run.
    public static let tailLimit = 10_000

    /// When set, every line goes here as it is produced and nothing is kept.
    public var sink: ((String) -> Void)?
    private var head: [String] = []
    /// The last lines, a ring once full: `tail[tailStart]` is the oldest.
    private var tail: [String] = []
    private var tailStart = 0
    /// Lines dropped between `head` and `tail`.
    public private(set) var dropped: UInt64 = 0
    /// Every line appended, streamed or kept.
    public private(set) var count: UInt64 = 0

    public init() {}

    /// Adds one line.
    /// - Complexity: O(1) amortised; memory at most `headLimit + tailLimit` lines.
    public mutating func append(_ line: String) {
        count += 1
        if let sink { sink(line); return }
        if head.count < Self.headLimit { head.append(line); return }
        if tail.count < Self.tailLimit { tail.append(line); return }
        tail[tailStart] = line
        tailStart = (tailStart + 1) % Self.tailLimit
        dropped += 1
    }

    /// The kept lines in order; where lines were dropped, one line says how many.
    /// - Complexity: O(kept lines).
    public var lines: [String] {
        var out = head
        if dropped > 0 {
            out.append("... \(dropped) lines dropped: the log keeps its first \(Self.headLimit) and last \(Self.tailLimit) lines "
                       + "(cocomem host --log without --json prints every line) ...")
        }
        out += tail[tailStart...] + tail[..<tailStart]
        return out
    }

    /// True if no line is kept (none was written, or every one was streamed).
    public var isEmpty: Bool { head.isEmpty }
}
