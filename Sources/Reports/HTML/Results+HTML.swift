import CoCoGuest
import CostModel
import Firmware
import TDXModule
public import CrashDump
import GuestKernel
import KVM
import MemoryModel
public import Simulation

// The HTML report of each command: a summary table with the numbers the
// text report prints, then the figures of what the run recorded.

extension BootResult {
    /// The first line of the text report, the page's subtitle.
    var headline: String {
        let s = scenario
        return "\(s.platform.rawValue) \(ByteCount(s.memory)), \(s.vcpus) vCPUs, accept_memory=\(s.lazy ? "lazy" : "eager"), "
            + "host \(s.platform == .tdx ? s.tdxHost.rawValue : "snp-" + s.hostMapping.rawValue + (s.snpHost ? " (SNP host model)" : "")), firmware \(s.firmware.rawValue), kernel \(s.kernel.version.rawValue)"
    }

    /// The rows of the summary table (what the text report prints, shortened).
    var summaryRows: [(String, String)] {
        let s = scenario
        var rows: [(String, String)] = [
            ("guest", "\(s.platform.rawValue.uppercased()), \(Markup.bytes(s.memory)), \(s.vcpus) vCPUs"),
            ("accept_memory", s.lazy ? "lazy" : "eager"),
            ("firmware / kernel", "\(s.firmware.rawValue) / \(s.kernel.version.rawValue)"),
            ("accepted by firmware", Markup.bytes(acceptedFirmware)),
            ("accepted by EFI stub", Markup.bytes(acceptedStub)),
            ("accepted by kernel boot", Markup.bytes(acceptedKernelBoot)),
            ("accepted by workload", Markup.bytes(acceptedWorkload)),
        ]
        if firmware.lostBytes > 0 { rows.append(("lost (type 15 not understood)", Markup.bytes(firmware.lostBytes))) }
        if let k = kernel {
            for (name, kb) in k.meminfo where ["MemTotal", "MemFree", "Unaccepted"].contains(name) {
                rows.append((name, "\(Markup.count(kb)) kB (\(Markup.bytes(kb * 1024)))"))
            }
        }
        rows.append(("host memory committed", Markup.bytes(alignUp(committedBytes, 1 << 20))))
        let t = times
        rows.append(("boot (virtual time)", "\(format3(t.totalBoot)) s: firmware \(format3(t.firmware)), EFI stub \(format3(t.efiStub)), kernel \(format3(t.kernelBoot)), deferred init \(format3(t.deferredInit)), early allocations \(format3(t.earlyAllocations)), user space \(format3(t.userspace))"))
        if t.workload > 0 { rows.append(("workload (virtual time)", "\(format3(t.workload)) s")) }
        if let f = fullyAcceptedAfter { rows.append(("all memory accepted at", "\(format3(f)) s")) }
        rows.append(("outcome", outcomeString))
        return rows
    }

    /// Where the guest's memory lies: q35's RAM below and above the PCI hole.
    var guestRAM: [Range<UInt64>] { q35RAM(scenario.memory) }

    var eventsSection: [HTMLPage.Section] {
        events.isEmpty ? [] : [HTMLPage.Section(title: "Events", html: "<ul>" + events.map { "<li>\(Markup.escape($0))</li>" }.joined() + "</ul>")]
    }

    /// `cocomem boot --report`: the summary, then the record's figures.
    /// - Complexity: O(what the record holds), never per page.
    public var htmlReport: String {
        HTMLPage(title: "cocomem boot", subtitle: headline, summary: summaryRows,
                 sections: RecordFigures.sections(record, guestBytes: scenario.memory, guestRAM: guestRAM) + eventsSection).render()
    }
}

extension KexecResult {
    var summaryRows: [(String, String)] {
        var rows: [(String, String)] = [("first boot", "\(format3(first.times.totalBoot)) s, outcome \(first.outcomeString)")]
        if case .success(let image)? = load {
            rows.append(("\(image.syscall.rawValue)", "\(image.type == .crash ? "crash" : "normal") image, load \(format3(loadSeconds)) s"))
            rows.append(("accepted at load", Markup.bytes(image.acceptedAtLoad)))
        }
        rows.append(("load", loadOutcome))
        rows.append(("reboot (kexec -e)", rebootOutcome))
        if let b = second {
            rows.append(("unaccepted at hand-over", Markup.bytes(unacceptedAtHandover)))
            rows.append(("next kernel \(b.scenario.kernel.version.rawValue)", "boot \(format3(b.times.totalBoot)) s, accepted \(Markup.bytes(b.acceptedKernelBoot)) more, re-accepted \(Markup.bytes(reacceptedBytes)), outcome \(b.outcomeString)"))
        }
        return rows
    }

    /// The whole run's record (the first boot, the load, the reboot, the next kernel) drawn on one time axis.
    var sections: [HTMLPage.Section] { RecordFigures.sections(record, guestBytes: first.scenario.memory, guestRAM: first.guestRAM) }

    /// `cocomem kexec --report`.
    /// - Complexity: O(what the two records hold).
    public var htmlReport: String {
        HTMLPage(title: "cocomem kexec", subtitle: first.headline, summary: summaryRows, sections: sections).render()
    }
}

extension DumpTool.Result {
    var summaryRows: [(String, String)] {
        let r = report
        let pages = { (n: UInt64) in "\(Markup.count(n)) (\(Markup.bytes(n * 4096)))" }
        var rows: [(String, String)] = [
            ("format", r.isELF ? "ELF (-E)" : "kdump-compressed"),
            ("original pages", pages(r.totalPages)),
            ("excluded: zero", pages(r.zeroPages)), ("excluded: non-private cache", pages(r.cachePages)),
            ("excluded: private cache", pages(r.privateCachePages)), ("excluded: user data", pages(r.userPages)),
            ("excluded: free", pages(r.freePages)), ("remaining pages", pages(r.totalPages - r.excluded)),
            ("memory hole", pages(maxMapnr - r.totalPages)),
            ("write bytes", "\(Markup.count(r.fileSize)) (\(Markup.bytes(r.fileSize)))" + (r.sampledPages > 0 ? " ± \(Markup.bytes(r.fileSizeMargin)) at 95%" : "")),
        ]
        if let e = elfBytes { rows.append(("ELF vmcore bytes", "\(Markup.count(e)) (\(Markup.bytes(e)))")) }
        for w in written { rows.append(("wrote", w)) }
        return rows
    }

    /// The dump's sections: composition, then what each level removes.
    func sections(levels: [LevelComparison], level: Int, version: MakedumpfileVersion) -> [HTMLPage.Section] {
        var out = [HTMLPage.Section(title: "The vmcore by page class", html: DumpFigures.composition(report.pagesByClass))]
        if !levels.isEmpty {
            out.append(HTMLPage.Section(title: "What each dump level removes", html: DumpFigures.levels(levels, runLevel: level, runVersion: version, zeroPages: report.zeroPages)))
        }
        return out
    }

    /// `cocomem dump --report`: the dump's numbers and figures, after the
    /// crashed guest's boot when there was one (nil with `--input`).
    /// - Complexity: O(classes + comparisons + what the boot's record holds).
    public func htmlReport(boot: BootResult?, levels: [LevelComparison], level: Int, version: MakedumpfileVersion) -> String {
        let summary: [(title: String?, rows: [(String, String)])] = (boot.map { [("The crashed guest's boot", $0.summaryRows)] } ?? []) + [("The dump (makedumpfile's report)", summaryRows)]
        var secs = sections(levels: levels, level: level, version: version)
        if let boot { secs += RecordFigures.sections(record, guestBytes: boot.scenario.memory, guestRAM: boot.guestRAM) }
        return HTMLPage(title: "cocomem dump -d \(level)", subtitle: boot?.headline ?? "converted vmcore", summaryGroups: summary, sections: secs).render()
    }
}

extension HostRun {
    var summaryRows: [(String, String)] {
        [("pages mapped 4K / 2M", "\(Markup.count(vm.pages4K)) / \(Markup.count(vm.pages2M))"),
         ("S-EPT pages", Markup.count(vm.septPages)), ("PAMT pages", Markup.count(vm.pamtPagesAllocated)),
         // The text report's `Host memory: total` (guest_memfd, S-EPT, PAMT and control pages, and the VMM's shared pages).
         ("host memory committed", Markup.bytes(ByteCount.frames(vm.hostMemory.totalPages).value)),
         // The text report's `Host allocator (...)` line: where S-EPT and control pages landed.
         ("host allocator", vm.hostAllocatorSummary),
         ("guest virtual time", "\(format3(clock.seconds(costs))) s"), ("outcome", outcomeString)]
    }

    var sections: [HTMLPage.Section] {
        var rows = ""
        for (leaf, st, n) in vm.module.calls.nonZero { rows += "<tr><td>\(Markup.escape("\(leaf)"))</td><td>\(Markup.escape("\(st)"))</td><td>\(Markup.count(n))</td></tr>" }
        let slots = scenario.slots.map { ByteCount.frames($0.baseGFN.value).value ..< ByteCount.frames($0.baseGFN.value + $0.pages).value }
        var out = RecordFigures.sections(record, guestBytes: guestBytes, guestRAM: slots)
        out.append(HTMLPage.Section(title: "SEAMCALLs", html: "<table class=\"small\"><tr><th>leaf</th><th>status</th><th>calls</th></tr>\(rows)</table>"))
        if !vm.brokenOutcomes.isEmpty {
            out.append(HTMLPage.Section(title: "Broken", html: "<ul>" + vm.brokenOutcomes.map { "<li>\(Markup.escape($0))</li>" }.joined() + "</ul>"))
        }
        return out
    }

    /// The TD's memory: its memslots (RAM below and above the PCI hole, the flash).
    var guestBytes: UInt64 { scenario.slots.reduce(UInt64(0)) { $0 + ByteCount.frames($1.pages).value } }

    /// `cocomem host --report`.
    public var htmlReport: String {
        HTMLPage(title: "cocomem host", subtitle: "KVM's TDX MMU on the TDX module", summary: summaryRows, sections: sections).render()
    }
}

extension ScenarioRunResult {
    /// `cocomem run --report`: the boot, then each step, one page.
    /// - Complexity: O(what the records hold).
    public var htmlReport: String {
        var summary: [(title: String?, rows: [(String, String)])] = boot.map { [("boot", $0.summaryRows)] } ?? []
        var secs: [HTMLPage.Section] = boot.map { b in RecordFigures.sections(b.record, guestBytes: b.scenario.memory, guestRAM: b.guestRAM) + b.eventsSection } ?? []
        for (i, s) in steps.enumerated() {
            let tag = "step \(i + 1) (\(file.steps[i].kind))"
            switch s {
            case .kexec(let k):
                summary.append((tag, k.summaryRows))
                secs += k.sections.map { HTMLPage.Section(title: "\(tag): \($0.title)", html: $0.html) }
            case .dump(let d):
                summary.append((tag, d.summaryRows))
                secs.append(HTMLPage.Section(title: "\(tag): the vmcore by page class", html: DumpFigures.composition(d.report.pagesByClass)))
                secs += RecordFigures.sections(d.record, guestBytes: file.scenario.memory, guestRAM: q35RAM(file.scenario.memory)).map { HTMLPage.Section(title: "\(tag): \($0.title)", html: $0.html) }
            case .memUsage(let u):
                summary.append((tag, [("kernel data pages", Markup.count(u.kernelData))]))
            case .notRun(let why, _):
                summary.append((tag, [("not run", why)]))
            case .snpHost(let h, _):
                summary.append((tag, [("SNP host", "\(h.scenario.commands.count) commands"), ("outcome", h.outcomeString)]))
            case .host(let h, _):
                summary.append((tag, h.summaryRows))
                secs += h.sections.map { HTMLPage.Section(title: "\(tag): \($0.title)", html: $0.html) }
            }
        }
        summary.append(("the run", [("outcome", outcome)]))
        return HTMLPage(title: "cocomem run", subtitle: boot?.headline ?? "scenario file", summaryGroups: summary, sections: secs).render()
    }

    /// Every record of the run, named, for the trace and the terminal strip.
    public var records: [(String, RunRecord)] {
        var out: [(String, RunRecord)] = boot.map { [("boot", $0.record)] } ?? []
        for (i, s) in steps.enumerated() {
            switch s {
            case .kexec(let k): out.append(("step \(i + 1) kexec", k.record))
            case .dump(let d): out.append(("step \(i + 1) dump", d.record))
            case .host(let h, _): out.append(("step \(i + 1) host", h.record))
            case .memUsage, .notRun, .snpHost: break
            }
        }
        return out
    }
}

/// QEMU's q35 RAM layout for `memory` bytes (`Q35Layout`), as address ranges.
func q35RAM(_ memory: UInt64) -> [Range<UInt64>] {
    guard let l = try? Q35Layout(memory: memory) else { return [] }
    return [l.lowRAM.start..<l.lowRAM.end] + (l.highRAM.map { [$0.start..<$0.end] } ?? [])
}
