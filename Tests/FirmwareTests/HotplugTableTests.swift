import Firmware
import MemoryModel
import Testing

/// The unaccepted table's hotplug extensions (issue 16 §4): the TDX RFC
/// v2's SRAT-sized version-2 table with its plugged bitmap, the AMD RFC's
/// `extend_unaccepted_bitmap()`, and `accept_memory()`'s plugged ∧
/// unaccepted runs against a reference that tests every unit.
@Suite struct HotplugTableTests {
    static let map: [EFIMemoryDescriptor] = [
        EFIMemoryDescriptor(type: .conventional, start: 0, end: 0x8000_0000),
        EFIMemoryDescriptor(type: .unaccepted, start: 0x1_0000_0000, end: 0x1_8000_0000),
    ]
    static let window = AddressRange(start: 0x1_8000_0000, end: 0x2_0000_0000)

    /// `parse_acpi_srat_regions()`: the window widens the table, its whole
    /// units are marked unaccepted, none plugged; the static descriptor's
    /// units become plugged as `process_unaccepted_memory()` marks them.
    @Test func sratWindowMakesAVersionTwoTable() throws {
        var m = try EFIMemoryMap(Self.map)
        var t = try #require(try EFIStub.allocateUnacceptedBitmap(map: &m, hotplug: .sratHotpluggable([Self.window])))
        #expect(t.version == 2)
        #expect(t.coveredEnd == Self.window.end)
        #expect(t.totalBytes == UnacceptedTable.headerSize + 2 * t.size)
        let w = t.unit(containing: Self.window.start)..<t.unit(containing: Self.window.end)
        #expect(t.bitmap.countSet(in: w) == 1024)
        #expect(try #require(t.plugged).popcount == 0)
        // Nothing is plugged before process_unaccepted_memory() runs: nothing is acceptable.
        #expect(t.acceptableRuns(in: t.allUnits).isEmpty)
        t.plugged!.set(t.unit(containing: 0x1_0000_0000)..<t.unit(containing: 0x1_8000_0000))
        t.bitmap.set(t.unit(containing: 0x1_0000_0000)..<t.unit(containing: 0x1_8000_0000))
        #expect(t.acceptableRuns(in: t.allUnits) == [t.unit(containing: 0x1_0000_0000)..<t.unit(containing: 0x1_8000_0000)])
        // Mainline's stub does not see the window.
        var m2 = try EFIMemoryMap(Self.map)
        let plain = try #require(try EFIStub.allocateUnacceptedBitmap(map: &m2))
        #expect(plain.version == 1 && plain.plugged == nil && plain.coveredEnd == 0x1_8000_0000)
    }

    /// A SRAT range smaller than a unit marks nothing (the review's fix to patch 2).
    @Test func subUnitSratRangeMarksNothing() throws {
        var m = try EFIMemoryMap(Self.map)
        let t = try #require(try EFIStub.allocateUnacceptedBitmap(map: &m, hotplug: .sratHotpluggable([AddressRange(start: 0x1_8010_0000, end: 0x1_8020_0000)])))
        #expect(t.bitmap.popcount == 0)
    }

    /// `extend_unaccepted_bitmap()`: the table grows to the rounded-up end, keeps its bits, new bytes zero.
    @Test func extendKeepsBitsAndGrows() throws {
        var t = UnacceptedTable(physBase: GuestPhysicalAddress(0x1_0000_0000), size: 8, address: GuestPhysicalAddress(0x7000_0018))
        t.bitmap.set(UnacceptedUnit(3)..<UnacceptedUnit(40))
        let e = t.extended(toCover: 0x2_0000_0001)
        #expect(e.coveredEnd >= 0x2_0000_0001 && e.size == divRoundUp(0x1_0020_0000, 2 << 20 * 8))
        #expect(e.bitmap.popcount == 37 && e.bitmap.countSet(in: UnacceptedUnit(3)..<UnacceptedUnit(40)) == 37)
        #expect(t.extended(toCover: 0x1_0000_1000) == t)
    }

    /// `acceptableRuns()` against a unit-by-unit reference, over random bitmaps.
    @Test func acceptableRunsMatchUnitByUnit() {
        var rng = SplitMix64(seed: 16)
        for _ in 0..<200 {
            let units = 1 + rng.next() % 300
            var t = UnacceptedTable(physBase: GuestPhysicalAddress(0), size: divRoundUp(units, 8), address: GuestPhysicalAddress(0))
            var p = PageBitmap<UnacceptedUnit>(count: t.size * 8)
            for _ in 0..<(rng.next() % 12) {
                let a = rng.next() % units, b = a + rng.next() % (units - a + 1)
                t.bitmap.set(UnacceptedUnit(a)..<UnacceptedUnit(b))
                let c = rng.next() % units, d = c + rng.next() % (units - c + 1)
                p.set(UnacceptedUnit(c)..<UnacceptedUnit(d))
            }
            t.plugged = p
            let lo = rng.next() % units, hi = lo + rng.next() % (units - lo + 1)
            let w = UnacceptedUnit(lo)..<UnacceptedUnit(hi)
            var expected: [Range<UInt64>] = []
            for u in lo..<hi where t.bitmap.test(UnacceptedUnit(u)) && p.test(UnacceptedUnit(u)) {
                if let last = expected.last, last.upperBound == u { expected[expected.count - 1] = last.lowerBound..<(u + 1) }
                else { expected.append(u..<(u + 1)) }
            }
            #expect(t.acceptableRuns(in: w).map { $0.lowerBound.value..<$0.upperBound.value } == expected)
        }
    }

    /// UHP: the attribute's proposed bit, and AmdSevDxe's accept-all pass
    /// skipping the window when the OS does not take unaccepted memory.
    @Test func uhpBitAndFirmwareSkip() throws {
        #expect(EFIMemoryAttributes.uhp.rawValue == 0x20_0000)
        #expect(!EFIMemoryAttributes.uhp.contains(.hotPluggable))
    }
}

