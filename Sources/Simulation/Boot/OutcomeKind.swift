/// The kinds of outcome a command reports, the word before the first `:`
/// of its outcome line (`--fail-on` chooses among them).
public enum OutcomeKind {
    /// Every kind: `ok`; `degraded` (completed, but memory lost or an
    /// allocation clamped); a guest that died; a kexec load the kernel
    /// refused; a host run whose VM broke.
    public static let all = ["ok", "degraded", "guest_terminated", "load_failed", "ioctl_error", "vm_bugged", "vm_dead"]

    /// The kind of an outcome line (`degraded: ...` is `degraded`,
    /// `load failed: ...` is `load_failed`).
    public static func of(_ outcome: String) -> String {
        if outcome.hasPrefix("load failed") { return "load_failed" }
        return String(outcome.prefix { $0 != ":" })
    }
}
