public import MemoryModel

/// The UEFI memory map as `GetMemoryMap()` returns it: descriptors sorted by
/// address, non-overlapping.
public struct EFIMemoryMap: Equatable, Sendable {
    public private(set) var descriptors: [EFIMemoryDescriptor]
    /// Incremented on every change, like the map key ExitBootServices() checks.
    public private(set) var mapKey: UInt64 = 1

    /// The most descriptors a map may have: 16384. edk2 maps have tens;
    /// the kernel's e820 table holds 3200 (`E820_MAX_ENTRIES`); every
    /// per-descriptor step of the model stays fast well past this.
    public static let maximumDescriptors = 16384
    /// The end of the physical address space a map may describe: 4 PiB +
    /// 4 GiB, the model's largest guest (4 PiB, `ByteCount.maximumGuestSize`)
    /// with its RAM moved above the 32-bit hole. The EFI stub's unaccepted
    /// bitmap for it is the 256 MiB its own comment sizes for 4 PiB.
    public static let maximumAddress: UInt64 = (1 << 52) + (1 << 32)

    static func tooManyDescriptors(line: Int? = nil, entries: Int? = nil) -> CocomemError {
        CocomemError(.invalidMemoryMap, "memory map has more than \(maximumDescriptors) descriptors\(line.map { " (line \($0))" } ?? "")\(entries.map { " (\($0) entries)" } ?? ""), the most a map may have")
    }

    /// - Throws: `.invalidMemoryMap` if descriptors overlap, are empty or
    ///   unaligned, end above `maximumAddress`, or are more than `maximumDescriptors`.
    public init(_ descriptors: [EFIMemoryDescriptor]) throws {
        guard descriptors.count <= Self.maximumDescriptors else { throw Self.tooManyDescriptors(entries: descriptors.count) }
        for d in descriptors {
            let (end, wraps) = d.physicalStart.addingReportingOverflow(d.numberOfPages.multipliedReportingOverflow(by: 4096).partialValue)
            guard d.numberOfPages <= Self.maximumAddress / 4096, !wraps, end <= Self.maximumAddress else {
                throw CocomemError(.invalidMemoryMap, "descriptor at \(hex16(d.physicalStart)) of \(d.numberOfPages) pages ends above \(hex16(Self.maximumAddress)), the highest address a map may describe")
            }
        }
        let sorted = descriptors.sorted { $0.physicalStart < $1.physicalStart }
        for (i, d) in sorted.enumerated() {
            guard d.physicalStart % 4096 == 0 else {
                throw CocomemError(.invalidMemoryMap, "descriptor at \(hex16(d.physicalStart)) is not 4 KiB aligned")
            }
            guard d.numberOfPages > 0 else {
                throw CocomemError(.invalidMemoryMap, "descriptor at \(hex16(d.physicalStart)) is empty")
            }
            if i > 0, sorted[i - 1].end > d.physicalStart {
                throw CocomemError(.invalidMemoryMap,
                    "memory map entries overlap: \(sorted[i - 1].range) and \(d.range)")
            }
        }
        self.descriptors = sorted
    }

    /// Total bytes of descriptors of `type`.
    public func bytes(of type: EFIMemoryType) -> UInt64 {
        descriptors.filter { $0.type == type }.reduce(0) { $0 + $1.bytes.value }
    }

    /// Ranges of `type`, merged where adjacent.
    public func ranges(of types: Set<EFIMemoryType>) -> [AddressRange] {
        var out: [AddressRange] = []
        for d in descriptors where types.contains(d.type) {
            if let last = out.last, last.end == d.physicalStart { out[out.count - 1].end = d.end }
            else { out.append(d.range) }
        }
        return out
    }

    /// Re-types `[r.start, r.end)` (which must lie in existing descriptors),
    /// splitting descriptors as the firmware's GCD/memory services do, and
    /// merging equal neighbours. Changes the map key.
    public mutating func retype(_ r: AddressRange, to type: EFIMemoryType) {
        var out: [EFIMemoryDescriptor] = []
        for d in descriptors {
            let ov = d.range.clamped(to: r)
            if ov.isEmpty { out.append(d); continue }
            if d.physicalStart < ov.start {
                out.append(EFIMemoryDescriptor(type: d.type, start: d.physicalStart, end: ov.start, attribute: d.attribute))
            }
            out.append(EFIMemoryDescriptor(type: type, start: ov.start, end: ov.end, attribute: d.attribute))
            if ov.end < d.end {
                out.append(EFIMemoryDescriptor(type: d.type, start: ov.end, end: d.end, attribute: d.attribute))
            }
        }
        var merged: [EFIMemoryDescriptor] = []
        for d in out {
            if var last = merged.last, last.type == d.type, last.attribute == d.attribute, last.end == d.physicalStart {
                last.numberOfPages += d.numberOfPages
                merged[merged.count - 1] = last
            } else { merged.append(d) }
        }
        descriptors = merged
        mapKey += 1
    }

    /// Replaces the descriptors with `merged`, which must cover the same
    /// sorted, non-overlapping ranges (a merge of the current ones).
    mutating func replaceDescriptors(_ merged: [EFIMemoryDescriptor]) { descriptors = merged }

    /// Allocates `bytes` (rounded up to pages) of `type` from the highest
    /// Conventional memory below `limit`, as edk2's `AllocatePages(AnyPages)`
    /// does top-down. Returns the base address.
    public mutating func allocateTopDown(_ bytes: UInt64, type: EFIMemoryType, below limit: UInt64 = 1 << 32) -> UInt64? {
        let size = alignUp(bytes, 4096)
        for d in descriptors.reversed() where d.type == .conventional {
            let top = min(d.end, limit)
            guard top > d.physicalStart, top - d.physicalStart >= size else { continue }
            let base = alignDown(top - size, 4096)
            retype(AddressRange(start: base, end: base + size), to: type)
            return base
        }
        return nil
    }
}
