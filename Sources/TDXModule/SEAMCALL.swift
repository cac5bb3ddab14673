public import MemoryModel

/// Host SEAMCALL leaves the model implements, numbered as in Linux
/// `arch/x86/virt/vmx/tdx/tdx.h` (TDH_MEM_PAGE_ADD = 2, ...), plus the
/// guest's TDG.MEM.PAGE.ACCEPT (TDCALL leaf 6), which is counted with them
/// so that one table shows every call into the module.
public enum SEAMCALLLeaf: Int, CaseIterable, Sendable, CustomStringConvertible {
    case memPageAdd
    case memSeptAdd
    case memPageAug
    case memRangeBlock
    case memPageDemote
    case memPagePromote
    case phymemPageReclaim
    case memPageRemove
    case memTrack
    case memRangeUnblock
    case phymemPageWbinvd
    case phymemPamtAdd
    case phymemPamtRemove
    case tdgMemPageAccept

    /// The leaf number in RAX.
    public var number: Int {
        switch self {
        case .memPageAdd: 2
        case .memSeptAdd: 3
        case .memPageAug: 6
        case .memRangeBlock: 7
        case .memPageDemote: 15
        case .memPagePromote: 23
        case .phymemPageReclaim: 28
        case .memPageRemove: 29
        case .memTrack: 38
        case .memRangeUnblock: 39
        case .phymemPageWbinvd: 41
        case .phymemPamtAdd: 58
        case .phymemPamtRemove: 59
        case .tdgMemPageAccept: 6
        }
    }

    public var description: String {
        switch self {
        case .memPageAdd: "TDH.MEM.PAGE.ADD"
        case .memSeptAdd: "TDH.MEM.SEPT.ADD"
        case .memPageAug: "TDH.MEM.PAGE.AUG"
        case .memRangeBlock: "TDH.MEM.RANGE.BLOCK"
        case .memPageDemote: "TDH.MEM.PAGE.DEMOTE"
        case .memPagePromote: "TDH.MEM.PAGE.PROMOTE"
        case .phymemPageReclaim: "TDH.PHYMEM.PAGE.RECLAIM"
        case .memPageRemove: "TDH.MEM.PAGE.REMOVE"
        case .memTrack: "TDH.MEM.TRACK"
        case .memRangeUnblock: "TDH.MEM.RANGE.UNBLOCK"
        case .phymemPageWbinvd: "TDH.PHYMEM.PAGE.WBINVD"
        case .phymemPamtAdd: "TDH.PHYMEM.PAMT.ADD"
        case .phymemPamtRemove: "TDH.PHYMEM.PAMT.REMOVE"
        case .tdgMemPageAccept: "TDG.MEM.PAGE.ACCEPT"
        }
    }
}

/// Counts of module calls by leaf and completion status: a fixed table, so
/// that bulk replay can add a recorded delta `k` times.
public struct SEAMCALLCounts: Equatable, Sendable {
    /// Statuses in table order.
    public static let statuses = TDXStatus.allCases
    static let width = statuses.count
    public private(set) var vector = CountVector(width: SEAMCALLLeaf.allCases.count * TDXStatus.allCases.count)

    public init() {}

    static func index(_ leaf: SEAMCALLLeaf, _ s: TDXStatus) -> Int { leaf.rawValue * width + statuses.firstIndex(of: s)! }

    public subscript(leaf leaf: SEAMCALLLeaf, status status: TDXStatus) -> UInt64 { vector[Self.index(leaf, status)] }

    public mutating func record(_ leaf: SEAMCALLLeaf, _ status: TDXStatus, _ n: UInt64 = 1) {
        vector.bump(Self.index(leaf, status), n)
    }

    /// - Complexity: O(leaves × statuses).
    public mutating func add(_ other: SEAMCALLCounts, times k: UInt64 = 1) { vector.add(other.vector, times: k) }

    public static func - (a: SEAMCALLCounts, b: SEAMCALLCounts) -> SEAMCALLCounts {
        var r = SEAMCALLCounts(); r.vector = a.vector - b.vector
        return r
    }

    /// Total calls of `leaf` with any status.
    public func total(_ leaf: SEAMCALLLeaf) -> UInt64 {
        Self.statuses.reduce(0) { $0 + self[leaf: leaf, status: $1] }
    }

    /// Non-zero entries, by leaf then status, in declaration order.
    public var nonZero: [(leaf: SEAMCALLLeaf, status: TDXStatus, count: UInt64)] {
        SEAMCALLLeaf.allCases.flatMap { l in
            Self.statuses.compactMap { s in self[leaf: l, status: s] == 0 ? nil : (l, s, self[leaf: l, status: s]) }
        }
    }
}
