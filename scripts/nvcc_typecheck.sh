#!/usr/bin/env bash
# nvcc for the cuda feature's type-check (scripts/cuda_check.sh points candle-kernels' build
# script at it with NVCC=): PTX and everything else go to the real nvcc ($DLKIT_REAL_NVCC), but
# the objects of candle's static library of quantized-LLM kernels (src/mmq_gguf/, src/moe/,
# src/mmvq_gguf.cu: GGUF matmuls and mixture-of-experts, which dlkit never calls) are left empty.
# That library is only ever linked, and a type-check links nothing; leaving it out took the check
# from 535 s to 273 s on a 2-core Intel Xeon. The PTX that candle loads at run time is still
# compiled for real.
set -euo pipefail
source="${*: -1}"
case " $* " in
*" -c "*)
    case "$source" in
    */mmq_gguf/*.cu | */moe/*.cu | */mmvq_gguf.cu)
        out=
        prev=
        for arg in "$@"; do
            [ "$prev" = -o ] && out="$arg"
            prev="$arg"
        done
        [ -n "$out" ] || { echo "nvcc_typecheck.sh: no -o in: $*" >&2; exit 2; }
        echo "nvcc_typecheck.sh: $source -> empty object (linked only, never type-checked)" >&2
        exec cc -x c -c /dev/null -o "$out"
        ;;
    esac
    ;;
esac
exec "$DLKIT_REAL_NVCC" "$@"
