public import MemoryModel

/// Host counters beyond the SEAMCALL table, with the names `--json` uses.
public enum KVMCounter: Int, CaseIterable, Sendable {
    case eptViolations
    case acceptEPTViolations
    /// EPT violations carrying a 4K accept level where KVM could otherwise
    /// have mapped 2M (the figure Yan Zhao counted for seed 004's [5]).
    case accept4KWhere2MPossible
    case writeLockAcquisitions
    /// Write `mmu_lock` acquisitions by `tdx_honor_guest_accept_level()` (seed 004's [6]).
    case writeLockAcceptLevel
    case splitsAccept
    case splitsAttributes
    case splitsConversion
    case splitsPunchHole
    case splitsRejectedShared
    case faultRetries
    case vcpuKicks
    case noVCPURetries
    case splitCacheTopups
    case zapsPrivate4K
    case zapsPrivate2M
    case zapsShared4K
    case foliosSplit
    case foliosMerged
    case conversions
    case conversionsFailed
    case punchHoles

    public var name: String {
        switch self {
        case .eptViolations: "ept_violations"
        case .acceptEPTViolations: "accept_ept_violations"
        case .accept4KWhere2MPossible: "accept_4k_where_2m_possible"
        case .writeLockAcquisitions: "mmu_lock_write_acquisitions"
        case .writeLockAcceptLevel: "mmu_lock_write_accept_level"
        case .splitsAccept: "splits_accept"
        case .splitsAttributes: "splits_attributes"
        case .splitsConversion: "splits_conversion"
        case .splitsPunchHole: "splits_punch_hole"
        case .splitsRejectedShared: "splits_rejected_shared_lock"
        case .faultRetries: "fault_retries"
        case .vcpuKicks: "vcpu_kicks"
        case .noVCPURetries: "no_vcpu_retries"
        case .splitCacheTopups: "split_cache_topups"
        case .zapsPrivate4K: "zaps_private_4k"
        case .zapsPrivate2M: "zaps_private_2m"
        case .zapsShared4K: "zaps_shared_4k"
        case .foliosSplit: "folios_split"
        case .foliosMerged: "folios_merged"
        case .conversions: "conversions"
        case .conversionsFailed: "conversions_failed"
        case .punchHoles: "punch_holes"
        }
    }
}

/// The KVM counter table: cheap to add `k` times for bulk replay.
public struct KVMCounters: Equatable, Sendable {
    public private(set) var vector = CountVector(width: KVMCounter.allCases.count)
    public init() {}
    public subscript(_ c: KVMCounter) -> UInt64 { vector[c.rawValue] }
    public mutating func bump(_ c: KVMCounter, _ n: UInt64 = 1) { vector.bump(c.rawValue, n) }
    public mutating func add(_ o: KVMCounters, times k: UInt64 = 1) { vector.add(o.vector, times: k) }
    public static func - (a: KVMCounters, b: KVMCounters) -> KVMCounters {
        var r = KVMCounters(); r.vector = a.vector - b.vector
        return r
    }
}

/// Why a huge mapping was split.
public enum SplitCause: String, Sendable {
    case accept, attributes, conversion, punchHole = "punch_hole"
    var counter: KVMCounter {
        switch self {
        case .accept: .splitsAccept
        case .attributes: .splitsAttributes
        case .conversion: .splitsConversion
        case .punchHole: .splitsPunchHole
        }
    }
}
