#!/usr/bin/env bash
# Every program (and Perl module) our scripts call comes from a package in
# test/harness/packages, or from an Essential package that every Debian
# machine has.  A program installed here by hand for another reason would
# otherwise let a suite pass on this machine and fail on a fresh one (the
# missing server headers of issue 15 hid behind such a machine).
#
# The scan is deliberately broad: every word of every script (comments
# dropped) that resolves to a program on PATH, in the server's bindir or in
# PGXS, is looked up with `dpkg -S`.  A word that is a program by accident
# (say `sort` inside SQL) resolves to an Essential package and passes.
source "$(dirname "$0")/../harness/lib.sh"
set +e
ensure_deps
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "not ok - $name"; fi; }

mapfile -t listed < <(deps_packages)
# allowed: the listed packages and what they depend on directly (installing
# `clang` brings `clang-14`, which owns the program)
declare -A allowed
for p in "${listed[@]}"; do
  allowed[$p]=1
  for d in $(dpkg-query -W -f='${Depends} ${Pre-Depends}' "$p" 2>/dev/null \
               | tr ',|' '\n\n' | sed -E 's/\(.*\)//; s/:any//; s/[[:space:]]//g'); do
    allowed[$d]=1
  done
done

# the package that owns a file (dpkg records /bin and /usr/bin paths apart on
# a merged-/usr system: try both spellings)
owner() {
  local f=$1 alt
  case $f in /usr/*) alt=${f#/usr} ;; *) alt=/usr$f ;; esac
  { dpkg -S "$f" 2>/dev/null || dpkg -S "$alt" 2>/dev/null; } | grep -v '^diversion by' \
    | head -n 1 | cut -d: -f1 | cut -d, -f1
}
declare -A essential_cache=()
is_allowed() {
  local pkg=$1
  [ -n "${allowed[$pkg]:-}" ] && return 0
  if [ -z "${essential_cache[$pkg]:-}" ]; then
    essential_cache[$pkg]=$(dpkg-query -W -f='${Essential}' "$pkg" 2>/dev/null)
  fi
  [ "${essential_cache[$pkg]}" = yes ]
}

# The scripts every command runs: the harness, the suites, the benchmarks,
# the fuzz build, CI, and the Makefile's recipes.
mapfile -t files < <(cd "$ROOT" && ls .ci/run Makefile test/harness/*.sh test/suites/*.sh bench/*.sh \
                       test/fuzz/*.sh 2>/dev/null)
check "found the scripts to scan (${#files[@]})" test "${#files[@]}" -ge 10

SEARCH_PATH="$PATH:$PGBIN:$PGXS_DIR/src/test/isolation:$PGXS_DIR/src/test/regress"
# Words in command position (comments dropped): at a line's start, after
# | ; & ( ` $( or a shell keyword, after the wrappers we use (as_pg, as_root,
# sudo, exec, command -v, timeout N, runuser -u U --, xargs), after variable
# assignments, and anything run as "$PGBIN/...".  Heredoc lines count as
# command lines too: SQL words that happen to be programs come from
# Essential packages.
command_words() {
  perl -ne '
    s/(^|\s)#.*$//;
    while (/\$\{?(?:PGBIN|PGXS_DIR)\}?\/(?:[\w\/]*\/)?([A-Za-z_][\w.+-]*)/g) { print "$1\n" }
    while (/(?:^|[|;&(`{]|\$\(|\b(?:then|do|else|elif|if|while|until|time|exec|as_pg|as_root|sudo|command -v|xargs(?: -r)?|timeout(?: -s \w+)? [0-9.]+[smh]?|runuser -u \S+ --)(?=\s))\s*(?:\w+=\S*\s+)*["\x27]?([A-Za-z_][\w.-]*(?:\+\+)?)(?![\w.]|\+?=|\[)/g) { print "$1\n" }
  ' "$@" | sort -u
}
mapfile -t words < <(cd "$ROOT" && command_words "${files[@]}")
check "found words in command position (${#words[@]})" test "${#words[@]}" -ge 20
programs=0
declare -A unlisted=()
for w in "${words[@]}"; do
  # builtins, keywords and our own functions are not programs
  case "$(type -t "$w" 2>/dev/null)" in builtin|keyword|function|alias) continue ;; esac
  path=$(PATH=$SEARCH_PATH command -v "$w" 2>/dev/null) || continue
  [ -n "$path" ] && [ "${path:0:1}" = / ] || continue
  programs=$((programs + 1))
  real=$(readlink -f "$path")
  pkg=$(owner "$real")
  [ -n "$pkg" ] || pkg=$(owner "$path")
  if [ -z "$pkg" ]; then
    unlisted[$w]="$path (no package owns it)"
  elif ! is_allowed "$pkg"; then
    unlisted[$w]="$path from $pkg"
  fi
done
check "the scripts call programs ($programs found)" test "$programs" -ge 20
for w in "${!unlisted[@]}"; do
  check "program '$w' comes from a listed package: ${unlisted[$w]} (add it to test/harness/packages)" false
done
[ ${#unlisted[@]} -eq 0 ] && check "every program called comes from a listed or Essential package" true

# Perl modules named in the scripts (perl -MFoo::Bar) and in Perl files of ours.
mapfile -t modules < <(cd "$ROOT" && { sed -E 's/(^|[[:space:]])#.*$//' "${files[@]}" \
                         | grep -oE -- 'perl( [^|;]*)? -M[A-Z][A-Za-z0-9_:]+' | sed -E 's/.*-M//';
                         find test bench -name '*.p[lm]' -o -name '*.t' | xargs -r grep -ohE '^use [A-Z][A-Za-z0-9_:]+' \
                           | sed 's/^use //'; } | sort -u)
PERL_INC="-I$PGXS_DIR/src/test/perl"
for m in "${modules[@]}"; do
  file=$(perl $PERL_INC -M"$m" -e "(my \$f = '$m') =~ s{::}{/}g; print \$INC{\"\$f.pm\"}" 2>/dev/null)
  if [ -z "$file" ]; then
    check "Perl module $m loads" false
    continue
  fi
  pkg=$(owner "$(readlink -f "$file")")
  check "Perl module $m comes from a listed package (${pkg:-no package})" is_allowed "${pkg:-none}"
done

# Every listed package is a real, installed Debian package (a typo would
# make ensure_deps fail on every run).
for p in "${listed[@]}"; do
  check "listed package $p is installed" \
    test "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed
done

echo "packages: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
