import CostModel
import Firmware
import Foundation
import MemoryModel
import Reports
import Simulation
import Testing

/// `compare`'s reader on logs as users paste them.
@Suite struct DmesgLogTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/dmesg")

    @Test func messyLinesAreRead() {
        let text = "Dec 05 10:00:00 td kernel: BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\r\n"
            + "<6>[    0.000000] smpboot: Allowing 8 CPUs, 0 hotplug CPUs\r\n"
            + "[    0.000000] [    T0] Memory Encryption Features active: Intel TDX\n"
            + "Linux version 6.8.0-1028-intel (buildd@lcy02) #30\n"
            + "  Normal   [mem 0x0000000100000000-0x000000027fffffff]\n"
            + "[    0.233091]   node   0: [mem 0x0000000000001000-0x000000000009ffff]\n"
            + "[    0.300000] Memory: 1700000K/8388088K available (20480K kernel code, 4096K rwdata, 12288K rodata, 4096K init, 8192K bss, 400000K reserved, 0K cma-reserved)\n"
            + "[    0.000000] BIOS-e820: [mem 0x0000000000100000\n"
            + "random text\n"
        let log = DmesgLog.read(text)
        #expect(log.linesRead == 10)
        #expect(log.e820 == [E820Entry(range: AddressRange(start: 0, end: 0xA_0000), type: .ram)])
        #expect(log.vcpus == 8)
        #expect(log.platformEvidence == "Memory Encryption Features active: Intel TDX")
        #expect(log.kernelRelease == "6.8.0-1028-intel")
        #expect(log.zoneRanges.count == 1)
        #expect(log.nodeRanges == [AddressRange(start: 0x1000, end: 0xA_0000)])
        #expect(log.memoryLine?.available == 1_700_000)
        #expect(log.memoryLine?.sections.initSize == 4096)
        #expect(log.truncated == ["BIOS-e820: [mem 0x0000000000100000"])
        let d = log.derive()
        #expect(d.scenario.memory == 8 << 30)
        #expect(d.scenario.vcpus == 8)
        #expect(d.notes.contains { $0.hasPrefix("kernel 6.8.0 ") })
        #expect(d.missing.contains { $0.hasPrefix("command line") })
    }

    /// The public TD log excerpts: what each lets compare derive, and the
    /// lines the model reproduces exactly (docs/COMPARE.md).
    @Test func fixturesFromPublicThreads() throws {
        let five = DmesgLog.read(try String(contentsOf: Self.fixtures.appendingPathComponent("tdx-linux-5.log"), encoding: .utf8))
        let d = five.derive()
        #expect(d.notes.contains { $0.hasPrefix("platform tdx") })
        #expect(d.scenario.memory == 4 << 30)
        #expect(d.notes.contains { $0.hasPrefix("kernel 6.6.0 ") })
        #expect(five.truncated == ["BIOS-e820: [mem 0x000000007d18f000"])
        let r = try BootSimulation(scenario: d.scenario, calibration: Calibration.builtIn()).run()
        let text = CompareReport.text(path: "tdx-linux-5.log", log: five, derived: d, model: r, meminfo: nil)
        #expect(text.contains("  =       Normal   [mem 0x0000000100000000-0x000000017fffffff]"))
        #expect(text.contains("4 of 4 lines in the log identical"))

        let crlf = DmesgLog.read(try String(contentsOf: Self.fixtures.appendingPathComponent("tdx-tools-524.log"), encoding: .utf8))
        #expect(crlf.e820.count == 4)
        #expect(crlf.derive().scenario.memory == 8 << 30)
    }

    @Test func meminfoLines() {
        let m = CompareReport.parseMeminfo("MemTotal:        3870720 kB\r\nMemFree: 100 kB\nHugePages_Total:       0\nbad line\n")
        #expect(m.map(\.0) == ["MemTotal", "MemFree", "HugePages_Total"])
        #expect(m.first?.1 == 3_870_720)
    }
}
