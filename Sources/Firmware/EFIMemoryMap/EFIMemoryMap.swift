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

    /// Re-types `[r.start, r.end)` (which must lie in existing descriptors)
    /// as edk2's `CoreConvertPages()` does (MdeModulePkg/Core/Dxe/Mem/Page.c):
    /// each descriptor the range covers is cut, the pieces outside the range
    /// keep their type and stay separate, and the converted piece goes back
    /// through `CoreAddRange()`, which merges it only with the descriptors
    /// adjacent to it that have the same type and attribute. Equal
    /// descriptors elsewhere in the map stay apart (GetMemoryMap() may merge
    /// them: `returned(by:)`). Changes the map key.
    /// - Complexity: O(n) in the descriptors.
    public mutating func retype(_ r: AddressRange, to type: EFIMemoryType) {
        var out: [EFIMemoryDescriptor] = []
        out.reserveCapacity(descriptors.count + 2)
        /// `CoreAddRange()`: merge `d` with the descriptor below it if equal
        /// (the one above is merged when it is appended next).
        func addRange(_ d: EFIMemoryDescriptor) {
            if let last = out.last, last.type == d.type, last.attribute == d.attribute, last.end == d.physicalStart {
                out[out.count - 1].numberOfPages += d.numberOfPages
            } else { out.append(d) }
        }
        var lastConverted = -1
        for d in descriptors {
            let ov = d.range.clamped(to: r)
            if ov.isEmpty {
                // The descriptor just above a converted piece is its neighbour.
                if lastConverted == out.count - 1, let last = out.last, last.end == d.physicalStart { addRange(d) }
                else { out.append(d) }
                continue
            }
            if d.physicalStart < ov.start {
                out.append(EFIMemoryDescriptor(type: d.type, start: d.physicalStart, end: ov.start, attribute: d.attribute))
            }
            addRange(EFIMemoryDescriptor(type: type, start: ov.start, end: ov.end, attribute: d.attribute))
            lastConverted = out.count - 1
            if ov.end < d.end {
                out.append(EFIMemoryDescriptor(type: d.type, start: ov.end, end: d.end, attribute: d.attribute))
            }
        }
        descriptors = out
        mapKey += 1
    }

    /// Describes `[r.start, r.end)` (which must lie in existing descriptors)
    /// as one descriptor of `type` and `attribute` (nil: removes it from the
    /// map), merging with nothing: what the firmware's resource HOBs make of
    /// a range that a HOB of its own describes (a SoftReserved range), or no
    /// HOB at all. Changes the map key.
    /// - Complexity: O(n) in the descriptors.
    public mutating func describe(_ r: AddressRange, as type: EFIMemoryType?, attribute: EFIMemoryAttributes = .ramDefault) {
        var out: [EFIMemoryDescriptor] = []
        out.reserveCapacity(descriptors.count + 3)
        var placed = false
        for d in descriptors {
            let ov = d.range.clamped(to: r)
            guard !ov.isEmpty else { out.append(d); continue }
            if d.physicalStart < ov.start { out.append(EFIMemoryDescriptor(type: d.type, start: d.physicalStart, end: ov.start, attribute: d.attribute)) }
            if !placed, let type {
                out.append(EFIMemoryDescriptor(type: type, start: r.start, end: r.end, attribute: attribute))
                placed = true
            }
            if ov.end < d.end { out.append(EFIMemoryDescriptor(type: d.type, start: ov.end, end: d.end, attribute: d.attribute)) }
        }
        descriptors = out
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
        // `FindFreePagesI()` never allocates from Special-Purpose memory (EFI_MEMORY_SP).
        for d in descriptors.reversed() where d.type == .conventional && !d.attribute.contains(.sp) {
            let top = min(d.end, limit)
            guard top > d.physicalStart, top - d.physicalStart >= size else { continue }
            let base = alignDown(top - size, 4096)
            retype(AddressRange(start: base, end: base + size), to: type)
            return base
        }
        return nil
    }
}
