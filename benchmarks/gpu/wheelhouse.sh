#!/usr/bin/env bash
# Fill benchmarks/gpu/wheels/ (git-ignored) with what `benchmarks/gpu/run.sh` needs on the
# lent GPU machine, which has JAX (CUDA) and PyTorch but no TensorFlow and no network.
# Run it here, where PyPI is reachable:   bash benchmarks/gpu/wheelhouse.sh
#
# What goes in:
#   * wheels (CPython 3.11, manylinux x86_64) of keras, keras-tuner (+ six, grpcio: both
#     imported by `import keras_tuner`), wandb, pandas, tabulate, matplotlib, pillow, tqdm,
#     scikit-learn and all their dependencies, at the versions the test suite runs;
#   * Fashion-MNIST's four IDX files (30 MB): the GPU machine cannot download them, and
#     both `archbench run` and `benchmarks.cli.perf` need them.
# What stays out, and why:
#   * tensorflow, tensorboard: not on that machine, and a JAX run never imports them;
#   * jax, jaxlib, torch, triton, nvidia-*: already there (CUDA builds);
#   * numpy, scipy, ml_dtypes, opt_einsum: JAX's own dependencies, so already there in
#     versions that machine's jaxlib was built against (installing ours could break it),
#     and 50 MB that would not fit (numpy 16 MB, scipy 34 MB).
# Size: everything else is ~84 MiB of wheels plus 30 MiB of data, more than the 64 MiB one
# `run` call may carry. So the files are split into carry groups, wheels/carry1, carry2, ...,
# each under GROUP_MIB (default 60): carry each group in its own `run` call, back to back
# while the machine is warm (ignored paths carried by an earlier call stay there), and call
# run.sh in the last one. wheels/CARRY.txt says which paths go with which call.
set -euo pipefail

cd "$(dirname "$0")"
HERE=$(pwd)
DEST=$HERE/wheels
PYVER=${GPU_PYTHON_VERSION:-3.11}            # the GPU machine's Python
GROUP_MIB=${GROUP_MIB:-60}                   # per carry group, under the 64 MiB limit
PIP=(${PIP:-python3 -m pip})

# The versions the test suite runs (`.nox/tests`); keep them in step with pyproject.toml.
REQUIREMENTS=(
    keras==3.15.1 keras-tuner==1.4.8 six==1.17.0 wandb==0.31.0 pandas==3.1.1
    tabulate==0.10.0 matplotlib==3.11.2 pillow==13.0.0 tqdm==4.70.1 scikit-learn==1.9.1
)
# Already on the GPU machine (see above); removed after the download resolved them.
EXCLUDE_RE='^(numpy|scipy|ml_dtypes|opt_einsum|jax|jaxlib|torch|triton|nvidia_.*|tensorflow.*|tensorboard.*)-'
# Must never be pulled in at all.
FORBIDDEN_RE='^(tensorflow|tensorboard|jax|jaxlib|torch|nvidia_)'

PLATFORMS=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_26 manylinux_2_24 manylinux_2_17 \
           manylinux2014 manylinux2010 manylinux1; do
    PLATFORMS+=(--platform "${tag}_x86_64")
done

rm -rf "$DEST"
mkdir -p "$DEST"
DL=$(mktemp -d)
trap 'rm -rf "$DL"' EXIT

echo "wheelhouse: downloading cp${PYVER/./} manylinux wheels into a scratch folder"
"${PIP[@]}" download --quiet --disable-pip-version-check --dest "$DL" \
    --only-binary=:all: "${PLATFORMS[@]}" --python-version "$PYVER" \
    --implementation cp --abi "cp${PYVER/./}" "${REQUIREMENTS[@]}" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
ls "$DL"/keras-*.whl "$DL"/wandb-*.whl >/dev/null  # the download did happen

for whl in "$DL"/*.whl; do
    name=$(basename "$whl")
    if [[ $name =~ $EXCLUDE_RE ]]; then
        echo "wheelhouse: leaving out $name (already on the GPU machine)"
        rm "$whl"
    fi
done
if ls "$DL" | grep -Eq "$FORBIDDEN_RE"; then
    echo "wheelhouse: error: a heavy package slipped in" >&2
    exit 1
fi

# Fashion-MNIST: Debian's dataset-fashion-mnist, or the Keras cache.
DATA=
for dir in /usr/share/datasets/fashion-mnist "${KERAS_HOME:-$HOME/.keras}/datasets/fashion-mnist"; do
    if [ -f "$dir/train-images-idx3-ubyte.gz" ]; then DATA=$dir; break; fi
done
if [ -z "$DATA" ]; then
    echo "wheelhouse: error: no Fashion-MNIST here; apt-get install dataset-fashion-mnist" >&2
    exit 1
fi

# Carry groups: the data first (it must travel whole), then the wheels, largest first,
# each into the first group with room.
python3 - "$DL" "$DATA" "$DEST" "$GROUP_MIB" <<'EOF'
import shutil, sys
from pathlib import Path

dl, data, dest, limit = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]) * 2**20
files = [("fashion-mnist", sorted(data.glob("*-ubyte.gz")))]
files += [(None, [w]) for w in sorted(dl.glob("*.whl"), key=lambda p: -p.stat().st_size)]
groups: list[list] = []  # [bytes, [(subdir, paths)]]
for subdir, paths in files:
    size = sum(p.stat().st_size for p in paths)
    if size > limit:
        sys.exit(f"wheelhouse: error: {paths[0].name} alone is over the group limit")
    for group in groups:
        if group[0] + size <= limit:
            break
    else:
        group = [0, []]
        groups.append(group)
    group[0] += size
    group[1].append((subdir, paths))
lines = []
for i, (size, members) in enumerate(groups, 1):
    target = dest / f"carry{i}"
    for subdir, paths in members:
        where = target / subdir if subdir else target
        where.mkdir(parents=True, exist_ok=True)
        for p in paths:
            shutil.copy2(p, where / p.name)
    lines.append(f"call {i}: carry benchmarks/gpu/wheels/carry{i} ({size / 2**20:.1f} MiB, "
                 f"{sum(len(p) for _, p in members)} files)")
manifest = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
for i in range(1, len(groups) + 1):  # a copy in each group: run.sh lists what did not come
    (dest / f"carry{i}" / "MANIFEST.txt").write_text("\n".join(manifest) + "\n")
last = len(groups)
note = [f"{len(groups)} carry group(s); ignored paths carried by an earlier call stay on the "
        "machine for the next while it is warm, so make the calls back to back:"]
note += lines
note.append(f"the command of call {last}: bash benchmarks/gpu/run.sh")
if last > 1:
    note.append("the command of the calls before: du -sh benchmarks/gpu/wheels/carry*")
(dest / "CARRY.txt").write_text("\n".join(note) + "\n")
print("\n".join(note))
EOF

total=$(du -sb "$DEST" | cut -f1)
wheels=$(find "$DEST" -name '*.whl' | wc -l)
echo "wheelhouse: $wheels wheels + Fashion-MNIST in $DEST: $(awk -v b="$total" 'BEGIN{printf "%.1f MiB", b/1048576}') in all"
