import CostModel
import Firmware
import MemoryModel
import Reports
import Simulation
import Testing

/// The EFI stub sees the descriptors the firmware hands it: edk2 merges a
/// converted range only with its neighbours (`CoreAddRange()`), GetMemoryMap
/// merges equal neighbours (`MergeMemoryMapDescriptor()`, `MergeMemoryMap()`
/// after clearing `EFI_MEMORY_ACCESS_MASK`), and `setup_e820()` calls
/// `process_unaccepted_memory()` once per Unaccepted descriptor.
@Suite struct StubPerDescriptorTests {
    static let twoAdjacentUnaccepted: [EFIMemoryDescriptor] = [
        EFIMemoryDescriptor(type: .conventional, start: 0, end: 0x4000_0000),
        EFIMemoryDescriptor(type: .unaccepted, start: 0x1_0000_0000, end: 0x1_0030_0000),
        EFIMemoryDescriptor(type: .unaccepted, start: 0x1_0030_0000, end: 0x1_0100_0000),
    ]

    /// `CoreConvertPages()` → `CoreAddRange()`: only the converted range
    /// merges, and only with the descriptors it touches.
    @Test func retypeMergesOnlyTheNeighboursOfTheChangedRange() throws {
        var map = try EFIMemoryMap(Self.twoAdjacentUnaccepted)
        map.retype(AddressRange(start: 0x3000_0000, end: 0x3010_0000), to: .acpiReclaim)
        #expect(map.descriptors.filter { $0.type == .unaccepted }.count == 2)
        // The converted range merges with an equal neighbour.
        map.retype(AddressRange(start: 0x3010_0000, end: 0x3020_0000), to: .acpiReclaim)
        #expect(map.descriptors.filter { $0.type == .acpiReclaim }.map(\.range) == [AddressRange(start: 0x3000_0000, end: 0x3020_0000)])
        // Converting back merges the three conventional pieces.
        map.retype(AddressRange(start: 0x3000_0000, end: 0x3020_0000), to: .conventional)
        #expect(map.descriptors.filter { $0.type == .conventional }.map(\.range) == [AddressRange(start: 0, end: 0x4000_0000)])
    }

    /// edk2's GetMemoryMap() merges adjacent descriptors of one type whose
    /// attributes are equal once RP, XP and RO are cleared.
    @Test func edk2GetMemoryMapMergesEqualNeighbours() throws {
        var ds = Self.twoAdjacentUnaccepted
        ds[2].attribute.insert(.xp)
        let map = try EFIMemoryMap(ds)
        #expect(map.returned(by: .unmerged).descriptors.count == 3)
        let merged = map.returned(by: .edk2)
        #expect(merged.descriptors.count == 2)
        #expect(merged.descriptors[1].range == AddressRange(start: 0x1_0000_0000, end: 0x1_0100_0000))
        #expect(merged.descriptors[1].attribute == .ramDefault)
        // Different cacheability is not merged.
        ds[2].attribute = [.wb]
        #expect(try EFIMemoryMap(ds).returned(by: .edk2).descriptors.count == 3)
    }

    /// Two adjacent Unaccepted descriptors: two process_unaccepted_memory()
    /// calls. The first (3 MiB, under two units) is accepted whole; the
    /// second's unaligned head is accepted and the rest goes to the bitmap.
    @Test func stubProcessesEachUnacceptedDescriptor() throws {
        let map = try EFIMemoryMap(Self.twoAdjacentUnaccepted)
        let r = try AcceptTool.run(map: map, calls: [], calibration: Calibration.builtIn())
        #expect(r.stubCalls.count == 2)
        #expect(r.stubCalls.map(\.descriptor) == [AddressRange(start: 0x1_0000_0000, end: 0x1_0030_0000),
                                                   AddressRange(start: 0x1_0030_0000, end: 0x1_0100_0000)])
        #expect(r.stubAccepts == [AddressRange(start: 0x1_0000_0000, end: 0x1_0030_0000),
                                  AddressRange(start: 0x1_0030_0000, end: 0x1_0040_0000)])
        #expect(r.unacceptedUnits.map { $0.lowerBound.value..<$0.upperBound.value } == [2..<8])
        // What edk2's GetMemoryMap() would have handed: one descriptor, all in the bitmap.
        let e = try AcceptTool.run(map: map, calls: [], calibration: Calibration.builtIn(), getMemoryMap: .edk2)
        #expect(e.stubCalls.count == 1)
        #expect(e.stubAccepts.isEmpty)
        #expect(e.unacceptedUnits.map { $0.lowerBound.value..<$0.upperBound.value } == [0..<8])
    }

    /// No Unaccepted descriptor: no table, and each accept_memory() call is
    /// still listed, returning at once (efi_get_unaccepted_table() is NULL).
    @Test func callsAreListedWhenTheMapHasNothingUnaccepted() throws {
        let map = try EFIMemoryMap([EFIMemoryDescriptor(type: .conventional, start: 0, end: 0x4000_0000)])
        let r = try AcceptTool.run(map: map, calls: [(0x10_0000, 0x40_0000), (0x2000_0000, 0x1000)], calibration: Calibration.builtIn())
        #expect(r.table == nil)
        #expect(r.calls.count == 2)
        #expect(r.calls.allSatisfy { $0.archAccepts.isEmpty })
        let json = r.json.serialized(pretty: false)
        #expect(json.contains("\"calls\":[{\"start\":1048576"))
        #expect(json.contains("no Unaccepted descriptor"))
    }
}
