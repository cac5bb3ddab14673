import CostModel
import Firmware
import MemoryModel
import Reports
import Simulation
import Testing

/// `--dmesg`: the kernel's formats, and numbers that follow from the model.
@Suite struct DmesgTests {
    @Test func printkTimeStampFormat() {
        #expect(DmesgLine(seconds: 0, text: "x").formatted == "[    0.000000] x")
        #expect(DmesgLine(seconds: 12.5, text: "y").formatted == "[   12.500000] y")
        #expect(DmesgLine(seconds: 123456.000001, text: "z").formatted == "[123456.000001] z")
    }

    /// setup_e820(): adjacent descriptors of one e820 type merge; Unaccepted
    /// is RAM only for a kernel with CONFIG_UNACCEPTED_MEMORY.
    @Test func e820FromTheEFIMap() throws {
        let map = try EFIMemoryMap([EFIMemoryDescriptor(type: .conventional, start: 0, end: 0x8_0000),
                                    EFIMemoryDescriptor(type: .bootServicesData, start: 0x8_0000, end: 0xA_0000),
                                    EFIMemoryDescriptor(type: .acpiReclaim, start: 0x10_0000, end: 0x20_0000),
                                    EFIMemoryDescriptor(type: .unaccepted, start: 0x1_0000_0000, end: 0x2_0000_0000)])
        let e = EFIStub.e820Table(map: map, unacceptedSupported: true)
        #expect(e.map { $0.line() } == ["BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable",
                                         "BIOS-e820: [mem 0x0000000000100000-0x00000000001fffff] ACPI data",
                                         "BIOS-e820: [mem 0x0000000100000000-0x00000001ffffffff] usable"])
        #expect(EFIStub.e820Table(map: map, unacceptedSupported: false).count == 2)
    }

    /// The node ranges add up to the Memory: line's total, and what it calls
    /// available plus reserved is that total.
    @Test func memoryLineAddsUp() throws {
        var s = Scenario()
        s.memory = 6 << 30
        let r = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run()
        let lines = r.dmesg().map(\.text)
        #expect(lines.contains("  Normal   [mem 0x0000000100000000-0x00000001ffffffff]"))
        let total = r.memblockMemory.reduce(0) { $0 + $1.size } / 1024
        let memory = try #require(lines.first { $0.hasPrefix("Memory: ") })
        #expect(memory.contains("/\(total)K available"))
        let available = UInt64(memory.dropFirst("Memory: ".count).prefix { $0 != "K" })!
        #expect(memory.contains(" \(total - available)K reserved"))
        #expect(lines.contains("smp: Brought up 1 node, 4 CPUs"))
        // A guest below 4 GiB has an empty Normal zone.
        s.memory = 2 << 30
        let small = try BootSimulation(scenario: s, calibration: Calibration.builtIn()).run().dmesg().map(\.text)
        #expect(small.contains("  Normal   empty"))
    }
}
