/// cocomem's version, printed by `cocomem --version`; results can embed it.
public enum CocomemVersion {
    public static let current = "0.1.0"
}
