public import CoCoGuest
public import CostModel
public import MemoryModel

/// The x86 Linux EFI stub's handling of unaccepted memory
/// (drivers/firmware/efi/libstub/unaccepted_memory.c, x86-stub.c).
public enum EFIStub {
    /// edk2's `SIZE_OF_POOL_HEAD` on X64 (`POOL_HEAD`: Signature, Reserved,
    /// Type, Size; MdeModulePkg/Core/Dxe/Mem/Pool.c): where a page-backed
    /// pool buffer starts within its first page.
    public static let edk2PoolHeadBytes: UInt64 = 24

    /// `allocate_unaccepted_bitmap()`: reuse a pre-installed table, or size
    /// one over the min..max of the Unaccepted descriptors rounded to the
    /// 2 MiB unit, and allocate it from the firmware as
    /// `EFI_ACPI_RECLAIM_MEMORY` pool (`allocate_pool`, so the table starts
    /// after edk2's 24-byte pool header, not on a page boundary).
    ///
    /// Placement: edk2's `CoreAllocatePoolI()` serves a block over 2688 bytes
    /// (bitmap over 2624 bytes, about 41 GiB of unaccepted memory) from fresh
    /// pages with the buffer at `Head->Data`, page offset `SIZE_OF_POOL_HEAD`
    /// = 0x18 (canonical/tdx#421's table at `...7d624018`). Smaller blocks
    /// come from free lists carved inside one page; they are placed at 0x18
    /// here too, which cannot change an outcome since such a block never
    /// crosses a page boundary. See docs/VERSIONS.md (canonical/tdx#421).
    ///
    /// `hotplug` is how a stub that knows about memory hot-plug widens the
    /// table (`StubHotplugAwareness`); mainline's does not.
    public static func allocateUnacceptedBitmap(map: inout EFIMemoryMap, preinstalled: UnacceptedTable? = nil,
                                                hotplug: StubHotplugAwareness = .none) throws -> UnacceptedTable? {
        if let preinstalled {
            guard preinstalled.version == 1 else {
                throw CocomemError(.unsupported, "pre-installed unaccepted table has version \(preinstalled.version) (EFI_UNSUPPORTED)")
            }
            return preinstalled
        }
        // The ranges that size the table: the Unaccepted descriptors (UHP
        // ones included: an unaware stub takes them as any other, an aware
        // one sizes for them), and the SRAT's hot-pluggable ranges for the
        // TDX RFC v2 (`update_mem_boundaries()`).
        var sizing = map.descriptors.filter { $0.type == .unaccepted }.map(\.range)
        if case .sratHotpluggable(let ranges) = hotplug { sizing += ranges }
        guard let lo = sizing.map(\.start).min(), let hi = sizing.map(\.end).max() else { return nil }
        let unit = UnacceptedTable.defaultUnitSize
        let base = alignDown(lo, unit)
        let end = alignUp(hi, unit)
        let size = divRoundUp(end - base, unit * 8)
        let versionTwo: Bool = if case .sratHotpluggable = hotplug { true } else { false }
        // Version 2 allocates the plugged bitmap right after the unaccepted one (`total_size = bitmap_size << 1`).
        let bitmaps = versionTwo ? 2 * size : size
        let poolHeader = EFIStub.edk2PoolHeadBytes
        guard let page = map.allocateTopDown(poolHeader + UnacceptedTable.headerSize + bitmaps, type: .acpiReclaim) else {
            throw CocomemError(.unsupported, "no conventional memory below 4G for the unaccepted table")
        }
        var t = UnacceptedTable(unitSize: unit, physBase: GuestPhysicalAddress(base), size: size, address: GuestPhysicalAddress(page + poolHeader))
        if case .sratHotpluggable(let ranges) = hotplug {
            t.version = 2
            t.plugged = PageBitmap<UnacceptedUnit>(count: size * 8)
            // `mark_hotplug_memory_unaccepted()`: each range rounded inward to
            // whole units (a range under a unit marks nothing, the review's fix).
            for r in ranges {
                let s = alignUp(r.start, unit), e = alignDown(r.end, unit)
                if s < e { t.bitmap.set(t.unit(containing: s)..<t.unit(containing: e)) }
            }
        }
        return t
    }

    /// What one `process_unaccepted_memory()` call did.
    public struct ProcessCall: Sendable {
        /// The ranges passed to `arch_accept_memory()`, in order.
        public var accepted: [AddressRange] = []
        /// The units `bitmap_set()` marked, if any.
        public var unitsSet: Range<UnacceptedUnit>? = nil
        public var outcome: AcceptOutcome = .ok
    }

    /// `process_unaccepted_memory()` for one Unaccepted descriptor: small
    /// ranges and unaligned heads and tails are accepted now (through the
    /// boot stub's `arch_accept_memory()`), parts outside the bitmap are
    /// accepted now, and the aligned middle is marked in the bitmap.
    /// Returns the ranges accepted.
    public static func processUnacceptedMemory(_ r: AddressRange, table: inout UnacceptedTable,
                                               acceptor: any ArchAcceptor, clock: inout PhaseClock) -> ([AddressRange], AcceptOutcome) {
        let c = processUnacceptedMemoryCall(r, table: &table, acceptor: acceptor, clock: &clock)
        return (c.accepted, c.outcome)
    }

    /// `process_unaccepted_memory()` (drivers/firmware/efi/libstub/unaccepted_memory.c)
    /// for one Unaccepted descriptor, reporting each `arch_accept_memory()`
    /// and the `bitmap_set()`.
    /// - Complexity: O(1) accepts and one bitmap range set.
    public static func processUnacceptedMemoryCall(_ r: AddressRange, table: inout UnacceptedTable,
                                                   acceptor: any ArchAcceptor, clock: inout PhaseClock) -> ProcessCall {
        var call = ProcessCall()
        func acc(_ s: UInt64, _ e: UInt64) -> AcceptOutcome {
            guard e > s else { return .ok }
            call.accepted.append(AddressRange(start: s, end: e))
            return acceptor.accept(AddressRange(start: s, end: e), vcpu: 0, clock: &clock)
        }
        func done(_ o: AcceptOutcome) -> ProcessCall { call.outcome = o; return call }
        let unit = table.unitSize
        var start = r.start, end = r.end
        if end - start < 2 * unit { return done(acc(start, end)) }
        if start % unit != 0 {
            let o = acc(start, alignUp(start, unit)); if o != .ok { return done(o) }
            start = alignUp(start, unit)
        }
        if end % unit != 0 {
            let o = acc(alignDown(end, unit), end); if o != .ok { return done(o) }
            end = alignDown(end, unit)
        }
        let physBase = table.physBase.value
        if start < physBase {
            let o = acc(start, min(physBase, end)); if o != .ok { return done(o) }
            start = physBase
        }
        if start >= end { return done(.ok) }
        if end > table.coveredEnd {
            let o = acc(max(start, table.coveredEnd), end); if o != .ok { return done(o) }
            end = max(start, table.coveredEnd)
        }
        let units = table.unit(containing: start)..<table.unit(containing: end)
        table.bitmap.set(units)
        // TDX RFC v2: "Set plugged bits for static memory and never unset".
        table.plugged?.set(units)
        if !units.isEmpty { call.unitsSet = units }
        return done(.ok)
    }
}

/// How the EFI stub treats memory that may be hot-plugged after boot
/// (issue 16 §4). Every released kernel is `none`.
public enum StubHotplugAwareness: Sendable, Equatable {
    /// Mainline: only Unaccepted descriptors size the table, and a
    /// descriptor with `EFI_MEMORY_UHP` is unaccepted memory like any other
    /// (RAM in E820, marked in the bitmap).
    case none
    /// The TDX hotplug RFC v2 (Zhenzhong Duan, June 2026, patches 1-3):
    /// `parse_acpi_srat_regions()` reads the SRAT's memory affinity entries
    /// flagged ENABLED and HOT_PLUGGABLE, widens the table to cover them,
    /// marks their whole units unaccepted, and makes the table version 2
    /// with a plugged bitmap (static memory plugged, hot-plug ranges not).
    case sratHotpluggable([AddressRange])
    /// A kernel that reads `EFI_MEMORY_UHP` (the prototype the edk2 RFC
    /// points to, pratiksampat/linux `unaccepted_memory_hotplug-attr`):
    /// UHP descriptors size the table but are neither RAM nor marked; their
    /// units are set when the memory is hot-added.
    case uhpAware
}
