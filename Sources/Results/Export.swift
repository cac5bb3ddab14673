import Foundation
import MemoryModel
import Reports
import Sweep

/// `cocomem results export`: every point of a database as CSV (RFC 4180,
/// a header of the table's columns) or JSON (an array of objects, one per
/// point, NULL columns left out), in the database's order (point, key).
public enum ResultsExport {
    public static func csv(_ c: ResultsDatabase.Contents) -> String {
        var o = c.columns.map(field).joined(separator: ",") + "\r\n"
        for r in c.rows {
            o += c.columns.map { field((r[$0] ?? .null).text) }.joined(separator: ",") + "\r\n"
        }
        return o
    }

    static func field(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    public static func json(_ c: ResultsDatabase.Contents) -> String {
        let rows: [JSON] = c.rows.map { r in
            .object(zip(r.columns, r.cells).compactMap { k, v in
                switch v {
                case .int(let i): (k, .int(i))
                case .double(let d): (k, .double(d))
                case .text(let s): (k, .string(s))
                case .null: nil
                }
            })
        }
        return JSON.array(rows).serialized() + "\n"
    }
}
