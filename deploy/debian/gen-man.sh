#!/bin/sh
# Man pages from the program's own help text, so they cannot drift from it:
#   gen-man.sh FEDFUSE OUTDIR  ->  OUTDIR/fedfuse.1.gz and OUTDIR/fedfuse-COMMAND.1.gz
# fedfuse(1) is `fedfuse help`; fedfuse-COMMAND(1) is `fedfuse help COMMAND`, shown as
# preformatted text (the help is laid out for an 80-column terminal already).
set -eu
exe=$1
out=$2
mkdir -p "$out"
version=$("$exe" --version | sed 's/^fedfuse //')
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%d 2>/dev/null || echo 1970-01-01)

# roff-escape: backslashes, and lines starting with . or ' (control characters)
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

page() { # name summary body-command...
    name=$1 summary=$2
    shift 2
    upper=$(echo "$name" | tr a-z A-Z)
    {
        printf '.TH %s 1 "%s" "fedfuse %s" "fedfuse manual"\n' "$upper" "$date" "$version"
        printf '.SH NAME\n%s \\- %s\n' "$name" "$summary"
        printf '.SH DESCRIPTION\n.nf\n'
        "$@" | esc
        printf '.fi\n.SH SEE ALSO\n'
        if [ "$name" = fedfuse ]; then
            printf 'fedfuse\\-COMMAND(1) for each command below; /usr/share/doc/fedfuse/operations.md\n'
        else
            printf '.BR fedfuse (1)\n'
        fi
    } > "$out/$name.1"
    gzip -9n -f "$out/$name.1"
}

page fedfuse "federated multimodal learning for hospitals" "$exe" help
"$exe" help | sed -n 's/^  \([a-z][a-z0-9-]*\)  *\(.*\)$/\1\t\2/p' |
while IFS="$(printf '\t')" read -r cmd summary; do
    [ "$cmd" = help ] && continue
    page "fedfuse-$cmd" "$(printf '%s' "$summary" | sed 's/-/\\-/g')" "$exe" help "$cmd"
done
