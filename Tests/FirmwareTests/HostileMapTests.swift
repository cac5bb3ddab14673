import CostModel
import Firmware
import Foundation
import MemoryModel
import Simulation
import Testing

/// Issue 15, EFI memory maps and calls files: mutated inputs are one
/// `CocomemError` naming the line or the limit; CRLF files parse as LF ones.
@Suite struct HostileMapTests {
    static func bootMap() throws -> EFIMemoryMap { try Q35Layout(memory: 63 << 30).efiMap(highType: .unaccepted) }

    /// A map copied from a serial console has CRLF line ends: it parsed as
    /// one line and `accept` reported `"unaccepted_table": null`.
    @Test func crlfMapParsesAsLF() throws {
        let map = try Self.bootMap()
        let crlf = map.kernelFormat().replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try AcceptTool.parseMap(crlf) == map)
        let r = try AcceptTool.run(map: AcceptTool.parseMap(crlf), calls: [], calibration: Calibration.builtIn())
        #expect(r.table != nil)
    }

    /// A million descriptors are refused naming the limit, before any is parsed into the model.
    @Test func tooManyDescriptorsAreRefused() throws {
        let line = "efi: mem00: [Conventional|   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0-0xfff] (0MB)\n"
        let text = String(repeating: line, count: 1_000_000)
        #expect { _ = try EFIMemoryMap.parseKernelFormat(text) } throws: {
            ($0 as? CocomemError)?.message.contains("more than \(EFIMemoryMap.maximumDescriptors) descriptors") == true
        }
        let json = "[" + Array(repeating: #"{"type":"Conventional","start":0,"bytes":4096}"#, count: 20_000).joined(separator: ",") + "]"
        #expect { _ = try EFIMemoryMap.parseJSON(json) } throws: { ($0 as? CocomemError)?.message.contains("more than") == true }
    }

    /// Addresses past the model's physical address space, and a JSON
    /// start + bytes past 2^64 (which trapped), are errors naming the limit.
    @Test func addressesAreBounded() throws {
        #expect { _ = try EFIMemoryMap.parseKernelFormat("efi: mem00: [Unaccepted  |   |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x100000000-0xfffffffffffffff] (0MB)") } throws: {
            ($0 as? CocomemError)?.message.contains("highest address") == true
        }
        #expect { _ = try EFIMemoryMap.parseJSON(#"[{"type":"Conventional","start":"0xfffffffffffff000","bytes":"0x2000"}]"#) } throws: {
            $0 is CocomemError
        }
        #expect { _ = try EFIMemoryMap.parseJSON(#"[{"type":"Conventional","start":"0x10000000000000","bytes":"0x20000000000000"}]"#) } throws: {
            ($0 as? CocomemError)?.message.contains("highest address") == true
        }
    }

    /// A CRLF calls file reads as an LF one; a lone CR is whitespace.
    @Test func crlfCallsFile() throws {
        let calls = try AcceptTool.parseCalls("0x100000000 0x200000\r\n# comment\r\n4294967296\r2097152\n")
        #expect(calls.map(\.0) == [0x1_0000_0000, 0x1_0000_0000])
        #expect(calls.map(\.1) == [0x20_0000, 0x20_0000])
        #expect(throws: CocomemError.self) { try AcceptTool.parseCalls("1 2 3\r\n") }
        // start + size past 2^64 trapped in unitWindow(); past the address limit it is refused.
        #expect { _ = try AcceptTool.parseCalls("0xfffffffffffff000 0x2000\n") } throws: {
            ($0 as? CocomemError)?.message.contains("calls line 1: start + size passes") == true
        }
    }
}
