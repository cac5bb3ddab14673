import CoCoGuest
import CostModel
import Firmware
@testable import GuestKernel
import MemoryModel
import Reports
import Simulation
import TestSupport
import Testing

/// A platform on which everything is accessible, for placement-only tests.
final class OpenPlatform: GuestPlatform {
    var name: String { "open" }
    var kind: PlatformKind { .tdx }
    var committedBytes: UInt64 { 0 }
    func isAccessible(_ r: AddressRange) -> Bool { true }
    func touch(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, AcceptOutcome) { (OpCounts(), .ok) }
    /// Nothing is private here, so converting changes nothing.
    func setMemoryEncrypted(_ r: AddressRange, toPrivate: Bool, vcpu: Int, clock: inout PhaseClock, costs: CostTable) -> AcceptOutcome { .ok }
    var sharedStats: SharedMemoryStats { SharedMemoryStats() }
    var sharedPages: UInt64 { 0 }
}

/// The E820 RAM of the x86-64 machine whose kexec debug output Qiang Ma
/// posted with "kexec: print out debugging message if required for
/// kexec_load" (v2, 2023): both loaders ran on it.
let loggedMachineRAM: [AddressRange] = [
    AddressRange(start: 0, end: 0xA_0000), AddressRange(start: 0x10_0000, end: 0x81_2000),
    AddressRange(start: 0x81_3000, end: 0xBEE3_9000), AddressRange(start: 0xBEEC_3000, end: 0xBF8E_D000),
    AddressRange(start: 0xBFBF_F000, end: 0xBFF7_C000), AddressRange(start: 0x1_0000_0000, end: 0x2_4000_0000),
]

func placementKernel(ram: [AddressRange], version: KernelVersion) throws -> GuestKernel {
    var c = KernelConfig()
    c.version = version
    return GuestKernel(config: c, vcpus: 4, costs: CostTable(try Calibration.builtIn()), platform: OpenPlatform(), ram: ram, unaccepted: nil)
}

/// The bzImage and initrd of that log: kernel file 0xd78400 bytes with 39
/// setup sectors, init_size 0x2ab7000, 2 MiB alignment, initrd 0x16f40a8.
func loggedPayload(cmdline: UInt64, efiDescriptors: UInt64) -> KexecPayload {
    var p = KexecPayload()
    p.setupSects = 39
    p.kernelFileBytes = 0xD7_8400
    p.initSize = 0x2AB_7000
    p.kernelAlignment = 2 << 20
    p.initrdBytes = 0x16F_40A8
    p.cmdlineBytes = cmdline
    p.efiRuntimeDescriptors = efiDescriptors
    return p
}

func kexecBoot(_ f: (inout Scenario) -> Void, plan: KexecPlan) throws -> KexecResult {
    var s = Scenario()
    f(&s)
    s.kernel.lazyAccept = s.lazy
    return try BootSimulation(scenario: s, calibration: Calibration.builtIn()).runKexec(plan)
}

@Suite struct KexecTests {
    /// kexec_file_load on a 6.8+ kernel placed purgatory, boot_params,
    /// kernel and initrd at these addresses on the logged machine
    /// ("kexec_file: segment[0]: ... mem=0x23fffb000 memsz=0x5000" ...).
    @Test func kexecFilePlacementReproducesTheLoggedSegments() throws {
        let k = try placementKernel(ram: loggedMachineRAM, version: .v6_16)
        var req = KexecRequest()
        req.payload = loggedPayload(cmdline: 64, efiDescriptors: 9)
        var image = KexecImage(syscall: .fileLoad, type: .normal, segments: [])
        try k.placeKexecFile(req, &image)
        #expect(image.segments == [
            KexecSegment(kind: .purgatory, bufsz: 0x4000, mem: 0x2_3FFF_B000, memsz: 0x5000),
            KexecSegment(kind: .bootParams, bufsz: 0x12D0, mem: 0x2_3FFF_9000, memsz: 0x2000),
            KexecSegment(kind: .kernel, bufsz: 0xD7_3400, mem: 0x2_3D40_0000, memsz: 0x2AB_7000),
            KexecSegment(kind: .initrd, bufsz: 0x16F_40A8, mem: 0x2_3BD0_B000, memsz: 0x16F_5000),
        ])
    }

    /// kexec-tools with kexec_load on the same machine: seven segments,
    /// sorted, the setup_data pieces bottom-up from 1 MiB and the rest from
    /// the top ("kexec: segment[0]: bufsz=0x70 mem=0x100000 memsz=0x1000" ...).
    @Test func kexecToolsPlacementReproducesTheLoggedSegments() throws {
        let k = try placementKernel(ram: loggedMachineRAM, version: .v6_16)
        var req = KexecRequest()
        req.syscall = .load
        req.payload = loggedPayload(cmdline: 0x9C, efiDescriptors: 8)
        var image = KexecImage(syscall: .load, type: .normal, segments: [])
        try k.placeKexecTools(req, &image)
        #expect(image.segments.map { [$0.bufsz, $0.mem, $0.memsz] } == [
            [0x70, 0x10_0000, 0x1000], [0x140, 0x10_1000, 0x1000], [0x30, 0x10_2000, 0x1000],
            [0x16F_40A8, 0x2_3BD0_B000, 0x16F_5000], [0xD7_3400, 0x2_3D40_0000, 0x2AB_7000],
            [0x50DC, 0x2_3FFF_1000, 0x6000], [0x70E0, 0x2_3FFF_7000, 0x9000],
        ])
    }

    /// Before b3ba234171cd the walk went bottom-up: each top-down buffer
    /// went to the top of the first region it fit in, the initrd stepping
    /// down page by page past the kernel.
    @Test func oldKernelsPlaceInTheFirstRegionThatFits() throws {
        let k = try placementKernel(ram: loggedMachineRAM, version: .v6_5)
        var req = KexecRequest()
        req.payload = loggedPayload(cmdline: 64, efiDescriptors: 9)
        var image = KexecImage(syscall: .fileLoad, type: .normal, segments: [])
        try k.placeKexecFile(req, &image)
        #expect(image.segments.map(\.mem) == [0x9_B000, 0x9_9000, 0xBC20_0000, 0xBC20_0000 - 0x16F_5000])
    }

    /// Randomized: the kernel's top-down search equals a brute-force scan
    /// of every aligned candidate from the top of each region in walk order,
    /// and kexec-tools' bottom-up search returns the lowest aligned free
    /// start; every result is aligned, in RAM, within bounds and clear of
    /// earlier segments.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func searchesAgreeWithBruteForce(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let page: UInt64 = 4096
        var ram: [AddressRange] = []
        var at: UInt64 = 0
        for _ in 0..<(2 + rng.next() % 4) {
            at += (rng.next() % 8) * page
            let size = (1 + rng.next() % 64) * page
            ram.append(AddressRange(start: at, size: size))
            at += size + page
        }
        var placed: [KexecSegment] = []
        for _ in 0..<6 {
            let align = page << (rng.next() % 3)
            let b = KexecBuf(kind: .initrd, bufsz: 1, memsz: (1 + rng.next() % 12) * page, align: align,
                             min: (rng.next() % 16) * page, topDown: true)
            let reverse = rng.next() % 2 == 0
            let got = KexecPlacement.kernelLocate(b, regions: ram, placed: placed, reverseWalk: reverse)
            var want: UInt64? = nil
            search: for r in (reverse ? Array(ram.reversed()) : ram) where r.size >= b.memsz && r.end - 1 >= b.min {
                var s = alignDown(r.end - b.memsz, align)
                while s >= max(r.start, b.min) {
                    if !placed.contains(where: { $0.range.overlaps(AddressRange(start: s, size: b.memsz)) }) { want = s; break search }
                    guard s >= align else { break }
                    s -= align
                }
            }
            #expect(got == want)
            let u = KexecBuf(kind: .initrd, bufsz: 1, memsz: b.memsz, align: align, min: b.min, topDown: false)
            let low = KexecPlacement.userLocate(u, ram: ram, placed: placed, memMin: 0, memMax: .max)
            let free = KexecPlacement.freeRanges(ram: ram, placed: placed)
            let lowWant = free.lazy.compactMap { f -> UInt64? in
                let s = alignUp(max(f.start, b.min), align)
                return s + b.memsz <= f.end ? s : nil
            }.first
            #expect(low == lowWant)
            if let g = got {
                #expect(g % align == 0 && g >= b.min)
                #expect(ram.contains { $0.start <= g && g + b.memsz <= $0.end })
                placed.append(KexecSegment(kind: .initrd, bufsz: 1, mem: g, memsz: b.memsz))
            }
        }
    }

    /// `sanity_check_segment_list()` rejects what the kernel rejects.
    @Test func sanityChecksRejectBadSegmentLists() throws {
        let r = try bootResult { $0.memory = 2 << 30 }
        let k = try #require(r.kernel)
        func check(_ segs: [KexecSegment], type: KexecImageType = .normal) -> String? {
            do { try k.sanityCheckSegmentList(KexecImage(syscall: .load, type: type, segments: segs)); return nil } catch let f as KexecLoadFailure { return f.errno } catch { return "?" }
        }
        let ok = KexecSegment(kind: .kernel, bufsz: 0x1000, mem: 0x100_0000, memsz: 0x1000)
        #expect(check([ok]) == nil)
        #expect(check([KexecSegment(kind: .kernel, bufsz: 1, mem: 0x100_0800, memsz: 0x1000)]) == "EADDRNOTAVAIL")
        #expect(check([ok, KexecSegment(kind: .initrd, bufsz: 1, mem: 0x100_0000, memsz: 0x2000)]) == "EINVAL")
        #expect(check([KexecSegment(kind: .kernel, bufsz: 0x2000, mem: 0x100_0000, memsz: 0x1000)]) == "EINVAL")
        #expect(check([KexecSegment(kind: .initrd, bufsz: 1, mem: 1 << 32, memsz: 1 << 30)]) == "EINVAL")  // half of 2 GiB
        #expect(check([KexecSegment(kind: .kernel, bufsz: 1, mem: 1 << 46, memsz: 0x1000)]) == "EADDRNOTAVAIL")
        #expect(check([ok], type: .crash) == "EADDRNOTAVAIL")  // no crashkernel= reservation
    }

    /// A crash image goes inside the crashkernel= region: ELF headers
    /// bottom-up at its start, the rest from its top.
    @Test func crashImagesStayInTheCrashKernelRegion() throws {
        var plan = KexecPlan()
        plan.request.type = .crash
        let out = try kexecBoot({ $0.memory = 4 << 30; $0.kernel.crashKernelBytes = 256 << 20 }, plan: plan)
        let crash = try #require(out.first.kernel?.reservation(.crashKernel))
        guard case .success(let image)? = out.load else { Issue.record("load failed: \(out.loadOutcome)"); return }
        #expect(image.segments.first?.kind == .elfcorehdr && image.segments.first?.mem == crash.start)
        #expect(image.segments.allSatisfy { crash.start <= $0.mem && $0.range.end <= crash.end })
        #expect(image.sourcePages == 0 && out.reboot == nil)
    }

    /// Seed 001 on TDX: without the fix the relocation touches the initrd's
    /// unaccepted destination and KVM kills the TD there; with it the same
    /// load accepts the destinations and the next kernel boots from the
    /// table as the first left it, accepting nothing twice.
    @Test func acceptOnLoadDecidesWhetherTheTDSurvivesKexec() throws {
        var plan = KexecPlan()
        plan.request.payload.initrdBytes = 256 << 20
        let old = try kexecBoot({ $0.memory = 4 << 30; $0.kernel.version = .v6_12 }, plan: plan)
        guard case .success(let oldImage)? = old.load else { Issue.record("load failed"); return }
        #expect(oldImage.acceptedAtLoad == 0)
        let fault = try #require(old.reboot?.faultAddress)
        let initrd = try #require(oldImage.segments.first { $0.kind == .initrd })
        #expect(old.reboot?.faultSegment == .initrd && initrd.range.contains(fault.value))
        guard case .terminated(let why)? = old.reboot?.outcome else { Issue.record("TD survived"); return }
        #expect(why.contains("Guest access before accepting \(hex16(fault.value))"))
        #expect(old.second == nil)

        let new = try kexecBoot({ $0.memory = 4 << 30; $0.kernel.version = .v6_16 }, plan: plan)
        guard case .success(let newImage)? = new.load else { Issue.record("load failed"); return }
        #expect(newImage.acceptedAtLoad > 0)
        #expect(new.reboot?.outcome == .ok)
        let second = try #require(new.second)
        #expect(second.outcome == .ok)
        #expect(new.reacceptedBytes == 0)
        #expect(second.acceptedKernelBoot <= new.unacceptedAtHandover)
        #expect(second.times.firmware == 0 && second.times.efiStub == 0)
        // Never a TDCALL on an already accepted page.
        #expect(second.counts[.tdxAccept4KAlreadyAccepted] == 0 && second.counts[.tdxAccept2MAlreadyAccepted] == 0)
    }

    /// After an eager boot nothing is left to accept: the kexec'd kernel
    /// issues no accept at all.
    @Test func aFullyAcceptedGuestKexecsWithoutAccepting() throws {
        let out = try kexecBoot({ $0.memory = 4 << 30; $0.lazy = false }, plan: KexecPlan())
        let second = try #require(out.second)
        #expect(out.unacceptedAtHandover == 0)
        #expect(second.acceptedKernelBoot == 0 && second.outcome == .ok)
        #expect(second.counts[.tdxAccept2MSuccess] == 0 && second.counts[.tdxAccept4KSuccess] == 0)
    }

    /// On SNP the same touch is a #VC for a page that is not validated.
    @Test func snpReportsTheUnvalidatedPage() throws {
        var plan = KexecPlan()
        plan.request.payload.initrdBytes = 256 << 20
        let out = try kexecBoot({ $0.platform = .snp; $0.firmware = .ovmfSNP; $0.memory = 4 << 30; $0.kernel.version = .v6_12 }, plan: plan)
        guard case .terminated(let why)? = out.reboot?.outcome else { Issue.record("guest survived: \(out.rebootOutcome)"); return }
        let fault = try #require(out.reboot?.faultAddress)
        #expect(why.contains("#VC") && why.contains("0x404") && why.contains(hex16(fault.value)))
    }

    /// Same inputs, same report.
    @Test func kexecRunsAreDeterministic() throws {
        let a = try kexecBoot({ $0.memory = 3 << 30 }, plan: KexecPlan()).json.serialized()
        let b = try kexecBoot({ $0.memory = 3 << 30 }, plan: KexecPlan()).json.serialized()
        #expect(a == b)
    }
}
