import MemoryModel
import Reports
public import Simulation

extension Row {
    /// The keys of the scenario file whose values are sizes: their columns
    /// hold bytes as integers, so SQL can compare and sort them.
    static let sizeKeys: Set<String> = ["memory", "partial-accept", "crashkernel", "boot-alloc", "init-size", "initrd", "kernel-size", "kernel-alignment"]

    /// Keys of a result's JSON that are not figures: the scenario (its own
    /// columns), the EFI map's descriptors, the event log and host logs.
    static let skippedKeys: Set<String> = ["scenario_file", "scenario", "efi_memory_map", "events", "log"]

    /// The row of one point: the leading columns, every scenario field
    /// (`guest_memory`, `kernel_version`, `step1_dump_level`, ...; sizes in
    /// bytes) and every figure of the result, flattened from the JSON the
    /// reports print (`Reports`: `BootResult.json`, each step's `json`), so
    /// each figure has one definition: `virtual_time_total_boot_s`,
    /// `accepted_bytes_firmware`, `meminfo_MemTotal`,
    /// `platform_ops_accept_4k_success`, `host_seamcalls`,
    /// `step1_dump_dump_bytes`, `degradations` (joined with "; ").
    /// - Complexity: O(size of the result's JSON).
    public static func of(_ result: ScenarioRunResult, key: String, point: Int, calibrationHash: String) -> Row {
        var row = Row()
        row.append("key", .text(key))
        row.append("point", .int(Int64(point)))
        row.append("cocomem_version", .text(CocomemVersion.current))
        row.append("calibration_hash", .text(calibrationHash))
        let outcome = result.outcome
        row.append("outcome", .text(outcome))
        row.append("outcome_kind", .text(outcomeKind(outcome)))
        row.appendScenario(result.file)
        row.scenarioColumns = Set(row.columns.dropFirst(RowSchema.leading.count))
        if let boot = result.boot { row.flatten(boot.json, prefix: "") }
        for (i, step) in result.steps.enumerated() {
            let prefix = "step\(i + 1)_\(result.file.steps[i].kind)_"
            row.flatten(step.json, prefix: prefix)
        }
        return row
    }

    /// A point whose run failed with an error (a dump of a guest that died
    /// first): its scenario and the error as its outcome.
    public static func failed(_ file: ScenarioFile, error: String, key: String, point: Int, calibrationHash: String) -> Row {
        var row = Row()
        row.append("key", .text(key))
        row.append("point", .int(Int64(point)))
        row.append("cocomem_version", .text(CocomemVersion.current))
        row.append("calibration_hash", .text(calibrationHash))
        row.append("outcome", .text("error: " + error))
        row.append("outcome_kind", .text("error"))
        row.appendScenario(file)
        row.scenarioColumns = Set(row.columns.dropFirst(RowSchema.leading.count))
        return row
    }

    /// `ok`, `degraded`, `error`, or what precedes the first `:` of the
    /// outcome (`guest_terminated`, `vm_dead`, `load ...`).
    public static func outcomeKind(_ outcome: String) -> String {
        if outcome == "ok" { return "ok" }
        guard let colon = outcome.firstIndex(of: ":") else { return outcome }
        return String(outcome[..<colon])
    }

    mutating func appendScenario(_ file: ScenarioFile) {
        guard case .map(let entries) = file.tree else { return }
        for e in entries {
            switch (e.key, e.value) {
            case ("steps", .list(let steps)):
                for (i, s) in steps.enumerated() {
                    guard case .map(let kinds) = s, let k = kinds.first else { continue }
                    append("step\(i + 1)_kind", .text(k.key))
                    appendScenario(k.value, prefix: "step\(i + 1)_\(Self.column(k.key))_")
                }
            case ("workload", .list(let phases)):
                append("workload", .text(phases.map { if case .string(let s) = $0 { s } else { "" } }.joined(separator: ", ")))
            default:
                appendScenario(e.value, key: e.key, prefix: "")
            }
        }
    }

    mutating func appendScenario(_ v: ScenarioFile.Value, prefix: String) {
        guard case .map(let entries) = v else { return }
        for e in entries { appendScenario(e.value, key: e.key, prefix: prefix) }
    }

    mutating func appendScenario(_ v: ScenarioFile.Value, key: String, prefix: String) {
        let name = prefix + Self.column(key)
        switch v {
        case .map(let entries): for e in entries { appendScenario(e.value, key: e.key, prefix: name + "_") }
        case .int(let i): append(name, Self.integer(i))
        case .bool(let b): append(name, .int(b ? 1 : 0))
        case .text(let s): append(name, .text(s))
        case .string(let s):
            if Self.sizeKeys.contains(key), let bytes = try? ByteCount.parse(s).value { append(name, Self.integer(bytes)) }
            else { append(name, .text(s)) }
        case .list(let xs): append(name, .text(xs.map { if case .string(let s) = $0 { s } else { "" } }.joined(separator: ", ")))
        }
    }

    /// A JSON result flattened: nested objects joined with `_`, arrays left
    /// out (except `degradations`, joined), `skippedKeys` left out.
    mutating func flatten(_ json: JSON, prefix: String) {
        guard case .object(let fields) = json else { return }
        for (k, v) in fields where !Self.skippedKeys.contains(k) {
            var name = prefix + Self.column(k)
            // The boot's own outcome beside the run's (`outcome`, which counts the steps too).
            if RowSchema.leading.contains(name) { name = "boot_" + name }
            switch v {
            case .object: flatten(v, prefix: name + "_")
            case .int(let i): append(name, .int(i))
            case .uint(let u): append(name, Self.integer(u))
            case .double(let d): append(name, d.isFinite ? .double(d) : .null)
            case .string(let s): append(name, .text(s))
            case .bool(let b): append(name, .int(b ? 1 : 0))
            case .null: append(name, .null)
            case .array(let xs):
                if k == "degradations" { append(name, .text(xs.map { if case .string(let s) = $0 { s } else { "" } }.joined(separator: "; "))) }
            }
        }
    }

    static func integer(_ u: UInt64) -> Cell { u <= UInt64(Int64.max) ? .int(Int64(u)) : .double(Double(u)) }

    /// A key as a column name: every run of characters other than letters,
    /// digits and `_` becomes one `_` (`free (zero)` → `free_zero`), so
    /// every column is a plain SQL identifier.
    public static func column(_ key: String) -> String {
        var out = ""
        for c in key {
            if c.isASCII && (c.isLetter || c.isNumber || c == "_") { out.append(c) }
            else if !out.hasSuffix("_") { out.append("_") }
        }
        while out.hasSuffix("_") && out.count > 1 { out.removeLast() }
        return out
    }
}
