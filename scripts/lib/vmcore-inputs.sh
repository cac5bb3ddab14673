# Shared by scripts/dump-bench.sh and scripts/makedumpfile-cpu.sh: the ELF vmcore inputs both measure on,
# made by cocomem itself ($bin) in the current directory and kept for the next run. Source it; needs $bin.

# Guest size in MiB from 1G/4G/16G/512M.
mib() {
    case $1 in
        *G) echo $(( ${1%G} * 1024 )) ;;
        *M) echo "${1%M}" ;;
        *) echo "error: size $1 is not like 1G or 512M" >&2; exit 1 ;;
    esac
}

make_input() {   # kind size -> file name
    local kind=$1 size=$2 m f
    m=$(mib "$size")
    f=vmcore-$kind-$size
    if [ ! -f "$f" ]; then
        case $kind in
            cache) w=(--workload "pagecache=$(( m * 3 / 4 ))M") ;;
            anon) w=(--workload "touch=$(( m * 3 / 4 ))M") ;;
            free) w=() ;;
            mix) w=(--workload "pagecache=$(( m / 4 ))M" --boot-alloc "$(( m / 4 ))M") ;;
            *) echo "error: input kind $kind is not cache, anon, free or mix" >&2; exit 1 ;;
        esac
        "$bin" dump --memory "$size" --vcpus 2 --kernel 6.16 "${w[@]}" --elf "$f.tmp" >/dev/null
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}
