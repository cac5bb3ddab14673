import CoCoGuest
import CostModel
import Firmware
@testable import GuestKernel
import MemoryModel
import SNP
import Simulation
import TestSupport
import Testing

/// What a kexec load allocates besides the destinations (issue 16): the file
/// buffers (`kernel_read_file_from_fd()`'s vmalloc, kexec-tools'
/// `slurp_file()`), freed after the load; the control, swap and indirection
/// pages the image keeps. And the SNP boot code's accept protocol by release.
@Suite struct KexecLoadBuffersTests {
    static func booted(_ f: (inout Scenario) -> Void) throws -> GuestKernel {
        var s = Scenario()
        f(&s)
        s.kernel.lazyAccept = s.lazy
        return try #require(try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run().kernel)
    }

    /// Pages are conserved across a load: every page is free (NR_FREE_PAGES
    /// counts the blocks on the unaccepted lists too) or allocated. After the
    /// load only the source copies and the control, swap and indirection
    /// pages stay allocated: the file buffers went back, and what was
    /// accepted for them stays accepted and free.
    @Test(arguments: [KexecSyscall.fileLoad, .load])
    func fileBuffersAreFreedAfterTheLoad(_ syscall: KexecSyscall) throws {
        let k = try Self.booted { $0.memory = 8 << 30 }
        let free = k.totalFreePages, unaccepted = k.totalUnacceptedPages, allocated = k.allocatedPages
        var req = KexecRequest()
        req.syscall = syscall
        req.payload.initrdBytes = 200 << 20
        var clock = PhaseClock(vcpus: 4)
        let image = try k.kexecLoad(req, clock: &clock).get()
        #expect(image.loadBufferPages == (14 << 20) / 4096 + (200 << 20) / 4096)
        let kept = image.sourcePages + image.controlPages
        #expect(k.totalFreePages + kept == free)
        #expect(k.allocatedPages == allocated + kept)
        // The buffers were held while the source copies were allocated: accepted memory free before the
        // load and what the load moved off the unaccepted lists cover both at once.
        let moved = unaccepted - k.totalUnacceptedPages
        #expect(moved * 4096 <= image.acceptedDuringLoad)
        #expect(moved + (free - unaccepted) >= kept + image.loadBufferPages)
    }

    /// The buffers are allocations like any other: on a lazily accepted
    /// guest whose free accepted memory is smaller than the files, reading
    /// them accepts memory before any destination is chosen; freeing them
    /// gives every page back.
    @Test func readingTheFilesAcceptsMemory() throws {
        let k = try Self.booted { $0.memory = 64 << 30 }
        let free = k.totalFreePages, unaccepted = k.totalUnacceptedPages
        var req = KexecRequest()
        req.payload.initrdBytes = 4 << 30
        var clock = PhaseClock(vcpus: 4)
        let (tally, pages) = try k.loadBuffers(req, clock: &clock).get()
        let acceptedFree = free - unaccepted
        try #require(pages == (14 << 20) / 4096 + (4 << 30) / 4096 && acceptedFree < pages)
        #expect(tally.values.reduce(0, +) == pages)
        #expect(k.totalFreePages == free - pages)
        let moved = unaccepted - k.totalUnacceptedPages
        #expect(moved >= pages - acceptedFree && moved % 1024 == 0)
        k.freeTallied(tally, use: .kernel)
        #expect(k.totalFreePages == free && k.totalUnacceptedPages == unaccepted - moved)
    }

    /// `kimage_add_entry()`: 511 entries a page (the 512th links the next
    /// page); entries are the source pages, one destination per segment and
    /// the final IND_DONE.
    @Test func indirectionPagesHold511Entries() {
        #expect(GuestKernel.indirectionPages(segments: 1, sourcePages: 0) == 1)
        #expect(GuestKernel.indirectionPages(segments: 1, sourcePages: 509) == 1)
        #expect(GuestKernel.indirectionPages(segments: 1, sourcePages: 510) == 2)
        // The default kexec_file image on 64G: purgatory 5, boot_params 2, kernel 16384, initrd 16384 pages.
        #expect(GuestKernel.indirectionPages(segments: 4, sourcePages: 32775) == 65)
    }

    /// d54d610243a4 made the boot code's `snp_accept_memory()` use the MSR
    /// protocol; the decompressor's accept follows the release it belongs to.
    @Test(arguments: [("6.12", false), ("6.12.24", false), ("6.12.25", true), ("6.6.87", false), ("6.6.88", true),
                      ("6.14.3", false), ("6.14.4", true), ("6.15", true), ("7.0", true)])
    func snpEarlyAcceptProtocolByRelease(_ release: String, _ msr: Bool) throws {
        #expect(try KernelVersion(parsing: release).snpEarlyAcceptUsesMSRProtocol == msr)
    }

    /// `extract_kernel()` accepts through the acceptor it is given: 64-entry
    /// GHCB descriptors (2M entries) before d54d610243a4, one MSR VMGEXIT and
    /// one 4K PVALIDATE a page from it.
    @Test func decompressorAcceptsThroughTheBootCodesProtocol() throws {
        let costs = CostTable(try Calibration.builtIn())
        func run(_ driver: SNPAcceptDriver) -> OpCounts {
            let p = SNPPlatform(policy: .back2M)
            var t = UnacceptedTable(physBase: GuestPhysicalAddress(4 << 30), size: 1, address: GuestPhysicalAddress(0))
            t.bitmap.set(Range(start: UnacceptedUnit(0), count: 8))
            let kernelAcceptor = SNPAcceptor(platform: p, driver: .linuxGHCB, costs: costs)
            let u = UnacceptedMemory(table: t, acceptor: kernelAcceptor, costs: costs)
            let k = GuestKernel(config: KernelConfig(), vcpus: 1, costs: costs, platform: SNPGuestPlatform(platform: p),
                                ram: [AddressRange(start: 4 << 30, size: 16 << 20)], unaccepted: u)
            var clock = PhaseClock(vcpus: 1)
            #expect(k.decompress(image: AddressRange(start: 4 << 30, size: 16 << 20), clock: &clock,
                                 acceptor: SNPAcceptor(platform: p, driver: driver, costs: costs)) == .ok)
            #expect(p.isAccessible(AddressRange(start: 4 << 30, size: 16 << 20).framesCovering))
            return clock.counts
        }
        let ghcb = run(.linuxGHCB), msr = run(.linuxMSR)
        #expect(ghcb[.snpPSCExit] == 1 && ghcb[.snpPSCEntry2M] == 8 && ghcb[.snpMSRPSCExit] == 0)
        #expect(msr[.snpMSRPSCExit] == 4096 && msr[.snpPvalidate4KSuccess] == 4096 && msr[.snpPSCExit] == 0)
    }
}
