import MemoryModel

/// What one dump level keeps under one makedumpfile version, for the
/// report's "what each level removes" figure.
public struct LevelComparison: Sendable, Equatable {
    public var dumpLevel: Int
    public var version: MakedumpfileVersion
    /// PT_LOAD pages in the image.
    public var totalPages: UInt64
    /// Pages the filter keeps (the 2nd bitmap before zero-page detection,
    /// which bit 1 adds while the pages are written).
    public var keptPages: UInt64
    public var counts: ExclusionCounts
}

extension GuestMemoryImage {
    /// Runs makedumpfile's page filter (`create_2nd_bitmap()`) at each of
    /// `levels` under each of `versions`, without reading or compressing a
    /// page: what each level and version would remove from this image.
    /// Without VMCOREINFO only bit 1 can work, as in makedumpfile, so every
    /// level keeps every page here.
    /// - Complexity: O(levels × versions × (role runs + blocks)), per range, never per page.
    public func levelComparison(levels: [Int], versions: [MakedumpfileVersion]) throws -> [LevelComparison] {
        var out: [LevelComparison] = []
        let total = loadPFNs.reduce(UInt64(0)) { $0 + UInt64($1.count) }
        for level in levels {
            for v in versions {
                let f = vmcoreinfo.map { MakedumpfileFilter(version: v, dumpLevel: level, vmcoreinfo: $0) }
                let r = input == nil ? filter(f) : try filterInput(f, version: v)
                out.append(LevelComparison(dumpLevel: level, version: v, totalPages: total, keptPages: r.dumpableCount, counts: r.counts))
            }
        }
        return out
    }
}
