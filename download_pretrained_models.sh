#!/usr/bin/env bash
# Download the authors' trained target and shadow models and unpack them into pretrained_models/.
#
#   bash download_pretrained_models.sh
#
# Safe to run twice: a valid archive already on disk is not fetched again; unpacking again
# restores the archive's files (other files in the folder are left alone). No checksum is published for the archive, so the script checks
# that it is a readable zip and prints its MD5 for you to record.
#
# Environment overrides (mainly for tests and mirrors):
#   PRETRAINED_URL         archive URL (file:// works too)
#   PRETRAINED_DIR         destination folder (default: pretrained_models/ beside this script)
#   PRETRAINED_DOWNLOADER  curl or wget (default: whichever is installed, curl first)
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bash download_pretrained_models.sh [-h | --help]

Downloads the authors' trained target and shadow checkpoints (pretrained_models.zip) and unpacks
them into pretrained_models/ beside this script. It takes no other arguments; to train models
instead, run an experiment script with its --train flag.

Environment overrides:
  PRETRAINED_URL         archive URL (file:// works too)
  PRETRAINED_DIR         destination folder (default: pretrained_models/ beside this script)
  PRETRAINED_DOWNLOADER  curl or wget (default: whichever is installed, curl first)
USAGE
}
case "${1-}" in
    "") ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1'; nothing was downloaded" >&2; usage >&2; exit 2 ;;
esac

DEFAULT_URL="https://hessenbox.tu-darmstadt.de/dl/fiBg5znMtAagRe58sCrrLtyg/pretrained_models.zip"
MANUAL_URL="https://hessenbox.tu-darmstadt.de/getlink/fiBg5znMtAagRe58sCrrLtyg/pretrained_models"
URL="${PRETRAINED_URL:-$DEFAULT_URL}"
DEST="${PRETRAINED_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pretrained_models}"
ARCHIVE="$DEST/pretrained_models.zip"

PART="" STAGE="" FAILED=""
fail() { FAILED=1; echo "error: $*" >&2; exit 1; }
on_exit() {  # clean up; anything not caught by an explicit check still ends in one line
    local status=$?
    [ -z "$PART" ] || rm -f "$PART"
    [ -z "$STAGE" ] || rm -rf "$STAGE"
    if [ "$status" -ne 0 ] && [ -z "$FAILED" ]; then
        echo "error: download_pretrained_models.sh failed unexpectedly (exit $status)" >&2
    fi
}
trap on_exit EXIT

have() { command -v "$1" >/dev/null 2>&1; }
python_bin() { if have python3; then echo python3; elif have python; then echo python; fi; }
PYTHON="$(python_bin)"

zip_ok() {  # zip_ok FILE: the archive is complete and every member's CRC matches
    if have unzip; then unzip -tqq "$1" >/dev/null 2>&1
    elif [ -n "$PYTHON" ]; then "$PYTHON" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); sys.exit(z.testzip() is not None)' "$1" >/dev/null 2>&1
    else fail "neither unzip nor python is installed; install unzip to check and unpack the archive"
    fi
}

unsafe_entry() {  # unsafe_entry FILE: print the first member that could land outside the folder
    if [ -n "$PYTHON" ]; then
        "$PYTHON" - "$1" <<'PY'
import stat, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    for info in archive.infolist():
        name = info.filename.replace("\\", "/")
        if (name.startswith("/") or ".." in name.split("/") or name[1:2] == ":"
                or stat.S_ISLNK(info.external_attr >> 16)):
            print(info.filename)
            break
PY
    else
        { unzip -Z "$1" 2>/dev/null | awk '/^l/ {print $NF}'
          unzip -Z1 "$1" 2>/dev/null | grep -E '^/|^[A-Za-z]:|(^|/)\.\.(/|$)'; } | head -n1 || true
    fi
}

md5_of() {
    if have md5sum; then md5sum "$1" | cut -d' ' -f1
    elif have md5; then md5 -q "$1"
    elif [ -n "$PYTHON" ]; then "$PYTHON" -c 'import hashlib, sys; h = hashlib.md5(); f = open(sys.argv[1], "rb"); [h.update(c) for c in iter(lambda: f.read(1 << 20), b"")]; print(h.hexdigest())' "$1"
    else echo "unknown"
    fi
}

download() {  # download URL FILE; silent, one line of our own on failure
    local downloader="${PRETRAINED_DOWNLOADER:-}"
    if [ -z "$downloader" ]; then
        if have curl; then downloader=curl; elif have wget; then downloader=wget; fi
    fi
    case "$downloader" in
        curl) curl -fsL --connect-timeout 20 --retry 2 -o "$2" "$1" 2>/dev/null ;;
        wget)
            if [[ "$1" == file://* ]]; then cp "${1#file://}" "$2" 2>/dev/null  # wget has no file://
            else wget -q --timeout=20 --tries=2 -O "$2" "$1" 2>/dev/null
            fi ;;
        "") fail "neither curl nor wget is installed; install one or download $MANUAL_URL by hand into $DEST" ;;
        *) fail "PRETRAINED_DOWNLOADER must be curl or wget, got '$downloader'" ;;
    esac
}

mkdir -p "$DEST" 2>/dev/null || fail "cannot create $DEST (read-only, or a file is in the way); choose another folder with PRETRAINED_DIR"
PROBE="$DEST/.write-probe.$$"
{ : > "$PROBE"; } 2>/dev/null || fail "$DEST is read-only; make it writable or choose another folder with PRETRAINED_DIR"
rm -f "$PROBE"

if [ -f "$ARCHIVE" ] && zip_ok "$ARCHIVE"; then
    echo "Archive already present: $ARCHIVE"
else
    PART="$ARCHIVE.part"
    rm -f "$PART"
    echo "Downloading $URL"
    download "$URL" "$PART" || fail "could not download $URL (offline, or the server refused); get it from $MANUAL_URL and save it as $ARCHIVE"
    zip_ok "$PART" || fail "the file from $URL is not a valid zip archive (an error page or an interrupted transfer); try again or get it from $MANUAL_URL"
    mv -f "$PART" "$ARCHIVE" || fail "could not move the download to $ARCHIVE"
    PART=""
fi

BAD="$(unsafe_entry "$ARCHIVE")"
if [ -n "$BAD" ]; then
    rm -f "$ARCHIVE"
    fail "the archive from $URL is unsafe (member '$BAD' is a symlink or points outside the folder); nothing was unpacked and the archive was deleted; get it from $MANUAL_URL"
fi

MD5="$(md5_of "$ARCHIVE")"
echo "MD5 of $ARCHIVE: $MD5 (no checksum is published; record it to detect a changed archive)"

STAGE="$(mktemp -d "$DEST/.unpack.XXXXXX")" || fail "cannot create a temporary folder in $DEST"
if have unzip; then
    unzip -qo "$ARCHIVE" -d "$STAGE" >/dev/null 2>&1 || fail "could not unpack $ARCHIVE (disk full?)"
else
    "$PYTHON" -m zipfile -e "$ARCHIVE" "$STAGE" >/dev/null 2>&1 || fail "could not unpack $ARCHIVE (disk full?)"
fi
# The archive may hold the checkpoints directly or inside one top folder: unpack either flat.
shopt -s dotglob nullglob
entries=("$STAGE"/*)
if [ "${#entries[@]}" -eq 1 ] && [ -d "${entries[0]}" ]; then entries=("${entries[0]}"/*); fi
for entry in "${entries[@]}"; do
    target="$DEST/$(basename "$entry")"
    if [ -d "$entry" ] && [ -d "$target" ]; then
        cp -Rf "$entry"/. "$target"/ || fail "could not copy $(basename "$entry") into $DEST"
    else
        rm -rf "$target" && mv -f "$entry" "$target" || fail "could not move $(basename "$entry") into $DEST"
    fi
done
rm -rf "$STAGE"
STAGE=""
count=$(find "$DEST" -type f -name '*.pt' | wc -l | tr -d ' ')
echo "Unpacked into $DEST ($count checkpoint files)"
