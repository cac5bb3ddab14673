import CoCoGuest
import Firmware
import GuestKernel
import MemoryModel
import Simulation
import TestSupport
import Testing

/// A SoftReserved (Specific Purpose Memory) range on an SEV-SNP guest, by
/// firmware: before 4e90b65e7b (edk2-stable202605) OVMF ignores it; from
/// it, AmdSevSnpInitialize makes it unaccepted like all RAM above 4 GiB and
/// the kernel takes it as ordinary RAM; with 6c6d0a72c2 (PR 12774) it stays
/// system memory with EFI_MEMORY_SP, validated by the firmware, and the
/// kernel leaves it out of System RAM (E820 soft reserved, for dax).
@Suite struct SoftReservedTests {
    static let sp = AddressRange(start: 9 << 30, end: 10 << 30)   // the last 1 GiB of an 8 GiB guest's RAM above 4 GiB

    func boot(tag: String? = nil, retain: Bool = false, protocolCall: Bool = true) throws -> BootResult {
        try bootResult { s in
            s.platform = .snp; s.memory = 8 << 30; s.vcpus = 2; s.lazy = true; s.workload = .none
            if let tag { let r = try! EDK2Release.parse(tag); s.edk2Release = r; s.firmware = r.generation(tdx: false) } else { s.firmware = .ovmfSNP }
            s.softReservedBytes = 1 << 30; s.retainSoftReserved = retain
            s.loader.stubCallsAcceptanceProtocol = protocolCall
        }
    }

    func descriptors(_ r: BootResult) -> [EFIMemoryDescriptor] {
        r.firmware.map.descriptors.filter { !$0.range.clamped(to: Self.sp).isEmpty }
    }

    func kernelRAM(_ r: BootResult) -> [AddressRange] { r.kernel?.ram ?? [] }

    @Test func edk2_202605LeavesItUnacceptedAndTheKernelTakesItAsRAM() throws {
        let r = try boot()
        #expect(r.outcome == .ok)
        let d = descriptors(r)
        #expect(d.count == 1 && d[0].type == .unaccepted && d[0].range == Self.sp && d[0].attribute.contains(.sp))
        #expect(kernelRAM(r).contains { $0.start <= Self.sp.start && $0.end >= Self.sp.end })
        // Unaccepted when the kernel starts: the stub set its units in the bitmap; the kernel accepts them on demand like any RAM.
        let t = try #require(r.firmware.table)
        let units = t.unit(containing: Self.sp.start)..<t.unit(containing: Self.sp.end)
        #expect(t.bitmap.setRuns(in: units).reduce(0) { $0 + UInt64($1.count) } == Self.sp.size / t.unitSize)
        #expect(!r.firmware.firmwareAccepted.contains { !$0.clamped(to: Self.sp).isEmpty })
    }

    @Test func pr12774KeepsItSoftReservedAndValidated() throws {
        let r = try boot(retain: true)
        #expect(r.outcome == .ok)
        let d = descriptors(r)
        #expect(d.count == 1 && d[0].type == .conventional && d[0].attribute.contains(.sp))
        #expect(r.firmware.firmwareAccepted.contains(Self.sp))
        // Not System RAM to the kernel: E820 soft reserved.
        #expect(!kernelRAM(r).contains { !$0.clamped(to: Self.sp).isEmpty })
        #expect(kernelRAM(r).map(\.end).max() == Self.sp.start)
        #expect(r.events.contains { $0.contains("soft reserved") })
    }

    @Test func tagsBefore202605LeaveItOutOfTheMap() throws {
        let r = try boot(tag: "edk2-stable202511")
        #expect(r.outcome == .ok)
        #expect(descriptors(r).isEmpty)
        #expect(kernelRAM(r).map(\.end).max() == Self.sp.start)
    }

    /// A kernel that does not call AllowUnacceptedMemory(): AmdSevDxe accepts
    /// everything at ExitBootServices and adds it back without EFI_MEMORY_SP.
    @Test func acceptAllDropsTheAttribute() throws {
        let r = try boot(protocolCall: false)
        #expect(r.outcome == .ok)
        #expect(descriptors(r).allSatisfy { $0.type == .conventional && !$0.attribute.contains(.sp) })
        #expect(kernelRAM(r).contains { $0.start <= Self.sp.start && $0.end >= Self.sp.end })
    }

    @Test func refusals() throws {
        func refused(_ f: (inout Scenario) -> Void) -> Bool {
            (try? bootResult { s in s.platform = .snp; s.firmware = .ovmfSNP; s.memory = 8 << 30; f(&s) }) == nil
        }
        #expect(refused { s in s.platform = .tdx; s.firmware = .tdvf; s.softReservedBytes = 1 << 30 })
        #expect(refused { s in s.softReservedBytes = 3 << 19 })             // not 2 MiB granular
        #expect(refused { s in s.softReservedBytes = 6 << 30 })             // all of high RAM
        #expect(refused { s in s.retainSoftReserved = true })               // nothing to retain
        #expect(refused { s in s.softReservedBytes = 1 << 30; s.retainSoftReserved = true; s.edk2Release = try! EDK2Release.parse("edk2-stable202511") })
    }
}

/// Memory that does not end on a 2 MiB unit (openvmm PR 4417 allows such
/// layouts on SNP as it did on TDX): the EFI stub sizes the bitmap over the
/// unit-aligned end (`allocate_unaccepted_bitmap()`), accepts the partial
/// unit at once (`process_unaccepted_memory()`: `end % unit_size`), and
/// leaves its bit clear, so `accept_memory()` never accepts it again.
@Suite struct UnalignedEndTests {
    @Test(arguments: [PlatformKind.tdx, .snp])
    func partialLastUnitIsAcceptedByTheStub(platform: PlatformKind) throws {
        let r = try bootResult { s in
            s.platform = platform; s.memory = 4097 << 20; s.vcpus = 2; s.lazy = true
            s.firmware = platform == .tdx ? .tdvf : .ovmfSNP; s.workload = .touch(3 << 30)
        }
        #expect(r.outcome == .ok, "\(r.outcomeString)")
        let end: UInt64 = (4 << 30) + (4097 << 20) - (2 << 30)   // q35: 2 GiB below 4 GiB, the rest above
        #expect(end % (2 << 20) == 1 << 20)
        let tail = AddressRange(start: alignDown(end, 2 << 20), end: end)
        #expect(r.firmware.stubAccepted.contains(tail))
        let t = try #require(r.kernel?.unaccepted?.table)
        #expect(t.coveredEnd >= alignUp(end, 2 << 20))
        let last = t.unit(containing: tail.start)
        #expect(t.bitmap.setRuns(in: last..<UnacceptedUnit(last.value + 1)).isEmpty)
        #expect(r.kernel?.ram.map(\.end).max() == end)
    }
}
