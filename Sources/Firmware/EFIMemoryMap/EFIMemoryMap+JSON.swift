import Foundation
import MemoryModel

/// The memory map as JSON: a list (or `{"efi_memory_map": [...]}`) of
/// `{type, start, end}` or `{type_id, start, bytes}` objects.
extension EFIMemoryMap {
    /// Parses a map given as JSON (see above).
    public static func parseJSON(_ text: String) throws -> EFIMemoryMap {
        guard let data = text.data(using: .utf8), let any = try? JSONSerialization.jsonObject(with: data) else {
            throw CocomemError(.invalidMemoryMap, "memory map is not valid JSON")
        }
        let list = (any as? [Any]) ?? ((any as? [String: Any])?["efi_memory_map"] as? [Any])
        guard let list else { throw CocomemError(.invalidMemoryMap, "memory map JSON must be a list of descriptors") }
        guard list.count <= maximumDescriptors else { throw tooManyDescriptors(entries: list.count) }
        var ds: [EFIMemoryDescriptor] = []
        for (i, e) in list.enumerated() {
            guard let o = e as? [String: Any] else { throw CocomemError(.invalidMemoryMap, "memory map entry \(i) is not an object") }
            func num(_ k: String) -> UInt64? {
                if let n = o[k] as? NSNumber { return n.uint64Value }
                if let s = o[k] as? String { return parseInteger(Substring(s)) }
                return nil
            }
            var type: EFIMemoryType? = nil
            if let id = num("type_id") { type = EFIMemoryType(rawValue: UInt32(truncatingIfNeeded: id)) }
            else if let n = o["type"] as? String { type = EFIMemoryType(name: n) }
            else if let id = num("type") { type = EFIMemoryType(rawValue: UInt32(truncatingIfNeeded: id)) }
            guard let type else { throw CocomemError(.invalidMemoryMap, "memory map entry \(i): unknown or missing type") }
            guard let start = num("start"), let end = num("end") ?? num("bytes").map({ start.addingReportingOverflow($0) }).map({ $0.overflow ? UInt64.max : $0.partialValue }),
                  end > start else {
                throw CocomemError(.invalidMemoryMap, "memory map entry \(i): needs start and end (or bytes)")
            }
            guard end <= maximumAddress else {
                throw CocomemError(.invalidMemoryMap, "memory map entry \(i): ends above \(hex16(maximumAddress)), the highest address a map may describe")
            }
            guard start % 4096 == 0, end % 4096 == 0 else { throw CocomemError(.invalidMemoryMap, "memory map entry \(i): not 4 KiB aligned") }
            ds.append(EFIMemoryDescriptor(type: type, start: start, end: end))
        }
        // As the efi=debug reader: GetMemoryMap() always returns descriptors (an empty `[]` was accepted here, refused there).
        guard !ds.isEmpty else { throw CocomemError(.invalidMemoryMap, "memory map has no entries") }
        return try EFIMemoryMap(ds)
    }
}
