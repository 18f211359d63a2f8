#!/usr/bin/env bash
# Fetch the course datasets into the data root: ${DLKIT_DATA:-<repo>/data}.
#
#   cifar-10-batches-bin/   CIFAR-10, official binary version (md5-checked tarball)
#   fashion-mnist/          Fashion-MNIST, the four official gzipped IDX files (md5-checked)
#
# Each file is downloaded to a temporary name and renamed only once its checksum matches,
# so an interrupted run never leaves a half-written dataset behind. Safe to re-run: what is
# already in place is kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="${DLKIT_DATA:-$here}"
mkdir -p "$root"

CIFAR_URL="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_MD5="c32a1d4ab5d03f1284b67883e8d87530"
FASHION_URL="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
# The official md5 sums of the gzipped files (as published with torchvision's FashionMNIST).
# The Debian package recompresses the files, so its .gz files have other sums (same content).
declare -A FASHION_MD5=(
  [train-images-idx3-ubyte.gz]=8d4fb7e6c68d591d4c3dfef9ec88bf0d
  [train-labels-idx1-ubyte.gz]=25c81989df183df01b3e8a0aad5dffbe
  [t10k-images-idx3-ubyte.gz]=bef4ecab320f06d8554ea6380940ec79
  [t10k-labels-idx1-ubyte.gz]=bb300cfdad3c16e7a12a480ee83cd310
)

offline_help() {
  rmdir "$root/fashion-mnist" 2>/dev/null || true # leave no empty folder to mislead dlkit
  cat >&2 <<HELP

Could not download the datasets (no network?). Instead:
  * Fashion-MNIST: install the Debian package   sudo apt-get install dataset-fashion-mnist
    (dlkit finds /usr/share/datasets/fashion-mnist/ by itself), or copy the four
    *-ubyte.gz files into $root/fashion-mnist/
  * CIFAR-10: on a machine with internet, download $CIFAR_URL,
    unpack it and copy the folder cifar-10-batches-bin/ into $root/
    (or put an image folder at $root/cifar10-jpg/{train,test}/<class>/*.jpg)
  * or set DLKIT_DATA to a folder that already holds them.
HELP
  exit 1
}

# download URL DEST MD5: fetch to DEST.part, check, rename.
download() {
  local url="$1" dest="$2" md5="$3"
  if [[ -f "$dest" ]] && echo "$md5  $dest" | md5sum --quiet -c - 2>/dev/null; then
    echo "ok      $dest (already there)"
    return 0
  fi
  echo "fetch   $url"
  if command -v curl >/dev/null; then
    curl -fL --progress-bar --retry 2 --connect-timeout 20 -o "$dest.part" "$url" || { rm -f "$dest.part"; offline_help; }
  elif command -v wget >/dev/null; then
    wget -q --timeout=20 -O "$dest.part" "$url" || { rm -f "$dest.part"; offline_help; }
  else
    echo "neither curl nor wget is installed" >&2
    offline_help
  fi
  if ! echo "$md5  $dest.part" | md5sum --quiet -c - >/dev/null 2>&1; then
    echo "checksum mismatch for $url (expected md5 $md5); deleted the download" >&2
    rm -f "$dest.part"
    exit 1
  fi
  mv "$dest.part" "$dest"
  echo "ok      $dest"
}

# Fashion-MNIST
mkdir -p "$root/fashion-mnist"
for f in "${!FASHION_MD5[@]}"; do
  download "$FASHION_URL/$f" "$root/fashion-mnist/$f" "${FASHION_MD5[$f]}"
done

# CIFAR-10 (binary version)
if [[ -f "$root/cifar-10-batches-bin/test_batch.bin" ]]; then
  echo "ok      $root/cifar-10-batches-bin (already there)"
else
  tarball="$root/cifar-10-binary.tar.gz"
  download "$CIFAR_URL" "$tarball" "$CIFAR_MD5"
  tmp="$(mktemp -d "$root/.cifar-unpack.XXXXXX")"
  tar -xzf "$tarball" -C "$tmp"
  rm -rf "$root/cifar-10-batches-bin"
  mv "$tmp/cifar-10-batches-bin" "$root/cifar-10-batches-bin"
  rmdir "$tmp"
  rm -f "$tarball"
  echo "ok      $root/cifar-10-batches-bin"
fi

echo "done: data root is $root"
