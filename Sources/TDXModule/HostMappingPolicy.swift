/// How an SEV-SNP host backs guest memory (4K or 2M guest_memfd folios).
public enum HostMappingPolicy: String, Sendable, CaseIterable {
    case map4K = "4k"
    case map2M = "2m"
}
