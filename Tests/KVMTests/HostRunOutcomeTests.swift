import CostModel
import Foundation
@testable import KVM
import MemoryModel
import Reports
import Simulation
import TDXModule
import Testing

/// Issue 18's defects in the host run's outcome, report and language, and
/// the HP_LOCK_TIMEOUT TD exit through the host command language.
@Suite struct HostRunOutcomeTests {
    func run(_ commands: String, td: String = "td vcpus=2 host=tdx-huge") throws -> HostRun {
        let r = try HostRun(try HostScenario.parse(td + "\nslot id=1 base=0 pages=0x40000 backing=hugetlb-2m\nfinalize\n" + commands),
                            calibration: try Calibration.builtIn(), log: true)
        try r.run()
        return r
    }

    /// A guest whose accept fails is not `ok`: `guest_terminated`, as boot
    /// and scenario runs report it, with the command's line.
    @Test func aFailedAcceptIsGuestTerminated() throws {
        let r = try run("accept 0x205+1 4k\ncontend 0x206+1\naccept 0x206+1 linux\naccept 0x300+1 4k\n")
        #expect(r.vm.outcome == .ok)
        #expect(r.outcomeString.hasPrefix("guest_terminated: line 6: TDX: Failed to accept memory"), "\(r.outcomeString)")
        #expect(r.text.contains("Outcome: guest_terminated: line 6"))
        let fine = try run("accept 0x0+512 linux\n")
        #expect(fine.outcomeString == "ok")
    }

    /// The HTML summary's host memory is the text report's `Host memory:
    /// total` (guest_memfd, S-EPT, PAMT, control pages and the VMM's shared
    /// pages), not guest_memfd's committed pages alone.
    @Test func theHTMLSummaryShowsTheTextReportsTotal() throws {
        let r = try run("accept 0x0+0x1000 linux\nhostmap 0x0+0x800\n")
        let total = r.vm.hostMemory.totalPages
        #expect(total > r.vm.committedPages)
        let html = r.htmlReport
        let row = try #require(html.range(of: "host memory committed"))
        let cell = String(html[row.upperBound...].prefix(120))
        #expect(cell.contains(Markup.bytes(ByteCount.frames(total).value)), "\(cell)")
        #expect(!cell.contains(Markup.bytes(ByteCount.frames(r.vm.committedPages).value)), "\(cell)")
    }

    /// The HTML summary names the host allocator as the text report's
    /// `Host allocator (...)` line does: its placement and its page counts.
    @Test func theHTMLSummaryShowsTheHostAllocator() throws {
        let r = try run("accept 0x0+0x1000 linux\n")
        let a = r.vm.hostAllocatorFootprint
        let html = r.htmlReport
        let row = try #require(html.range(of: "host allocator"))
        let cell = String(html[row.upperBound...].prefix(200))
        #expect(cell.contains("\(a.placement.rawValue): \(a.controlPages) control + \(a.septPages) S-EPT pages in \(a.ranges) 2M ranges"), "\(cell)")
        #expect(r.text.contains("Host allocator (\(a.placement.rawValue)): \(a.controlPages) control + \(a.septPages) S-EPT pages in \(a.ranges) 2M ranges"))
    }

    /// Under Dynamic PAMT the summary's allocator cell says its PAMT is that
    /// of the control pages' ranges, so it does not read as disagreeing with
    /// the "PAMT pages" cell, which counts every PAMT page of the TD.
    @Test func theHTMLAllocatorCellNamesWhosePAMTItCounts() throws {
        let r = try run("accept 0x0+0x1000 linux\n", td: "td vcpus=2 host=tdx dpamt=v4")
        let a = r.vm.hostAllocatorFootprint
        #expect(a.pamtPagesPerRange > 0)
        let html = r.htmlReport
        let row = try #require(html.range(of: "host allocator"))
        let cell = String(html[row.upperBound...].prefix(240))
        #expect(cell.contains("PAMT of those ranges \(ByteCount.frames(a.ranges * a.pamtPagesPerRange))"), "\(cell)")
        #expect(r.vm.pamtPagesAllocated > a.ranges * a.pamtPagesPerRange)
    }

    /// Words after `accept`'s driver or after `access`'s range are refused.
    @Test func extraWordsAreRefused() throws {
        let head = "td vcpus=2 host=tdx-huge\nslot id=1 base=0 pages=2048\n"
        for (line, want) in [("accept 0x0+512 linux extra", "accept takes GFN[+COUNT], a driver"),
                             ("accept 0x0+512 4k vcpu=1 2m", "got '2m'"),
                             ("access 0x5 linux", "access takes GFN[+COUNT] and vcpu=N, got 'linux'")] {
            #expect(throws: CocomemError.self) { try HostScenario.parse(head + line + "\n") }
            do { _ = try HostScenario.parse(head + line + "\n") } catch { #expect("\(error)".contains(want), "\(error)") }
        }
        #expect(throws: Never.self) { try HostScenario.parse(head + "accept 0x0+512 vcpu=1 linux\naccess 0x5 vcpu=1\n") }
    }

    /// TDVF's refused 2M ACCEPT leaves vCPU 0's `hp_lock_busy` set; shared
    /// faults pass 0.5 s of its virtual time without a TDCALL, and its next
    /// refused ACCEPT, past HP_LOCK_TIMEOUT (10 ms here), TD-exits:
    /// KVM_EXIT_INTERNAL_ERROR, the VMM stops the VM.
    @Test func aVCPURefusedPastHPLockTimeoutTDExits() throws {
        let cmds = "contend 0x200+512\naccept 0x200+512 2m\nconvert 0x1000+0x20000 shared\naccess 0x1000+0x20000\naccept 0x200+512 2m\n"
        let r = try run(cmds, td: "td vcpus=2 host=tdx-huge hp-lock-timeout=0.01")
        #expect(r.vm.module.hostPriorityTimeouts == 1)
        guard case .vmDead(let why) = r.vm.outcome else { Issue.record("outcome \(r.vm.outcome)"); return }
        #expect(why.contains("TDX_HOST_PRIORITY_BUSY_TIMEOUT") && why.contains("KVM_EXIT_INTERNAL_ERROR"))
        #expect(r.outcomeString.hasPrefix("vm_dead: "))
        // At the default 1 s the same run stays alive: TDVF fails, nothing exits.
        let d = try run(cmds)
        #expect(d.vm.module.hostPriorityTimeouts == 0 && d.vm.outcome == .ok)
        #expect(d.outcomeString.hasPrefix("guest_terminated: line 5: TDVF"))
    }
}
