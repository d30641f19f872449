#!/usr/bin/env bash
# Issue 16 item 14: every line of README.md's SQL tour runs as shown.
#
# Takes every ```sql block of the "## Getting started" section of README.md
# (README=path overrides it), in order, and runs it statement by statement in
# one psql session on a fresh database, the way a reader pastes it.  If the
# tour does not start with CREATE EXTENSION carbon_ledger, it is done first.
# The comment on the line that ends a statement says what to expect:
#   -- ...: CL003              (ends in ": " and a SQLSTATE) the statement
#                              raises exactly that SQLSTATE; every other
#                              statement must succeed
#   -- 700 | 300 (...)         (starts with a number) the statement returns
#                              exactly one row, whose columns, joined by
#                              " | ", are the text before any "," "(" ";"
#                              or ": "
#   -- ... entry 2 ...         ("entry N" or "seal N") it returns the one
#                              value N
#   -- ... ok = true           every row it returns has ok = true
# Any other comment is prose.  So a result comment the README no longer
# keeps true fails here.
# Runs against the cluster of `make test` (PGHOST/PGPORT set by the harness).
set -uo pipefail
PGBIN=${PGBIN:-$(pg_config --bindir)}
README=${README:-$(cd "$(dirname "$0")/../.." && pwd)/README.md}
DB=readme_tour
pass=0; fail=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"; "$PGBIN/dropdb" --if-exists "$DB" >/dev/null 2>&1' EXIT

# README → $work/tour.psql (the statements, each followed by a marker line
# carrying its number and psql's SQLSTATE) and $work/expect (one line per
# statement: number, kind, expected value, statement text, separated by
# \x1f, not a tab, since `read` would merge a tab-separated empty field).
perl -CSD -e '
  my ($readme, $psql, $expect) = @ARGV;
  open(my $in, "<", $readme) or die "cannot read $readme: $!\n";
  my ($section, $block, @stmts, $buf) = (0, 0);
  while (my $line = <$in>) {
    chomp $line;
    if ($line =~ /^## /) { $section = ($line =~ /^## Getting started\s*$/); next; }
    next unless $section;
    if (!$block && $line =~ /^```sql\s*$/) { $block = 1; next; }
    if ($block && $line =~ /^```\s*$/) { $block = 0; next; }
    next unless $block;
    # split the line into code and comment at the first -- outside quotes
    my ($code, $comment, $q) = ("", "", 0);
    for (my $i = 0; $i < length $line; $i++) {
      my $c = substr($line, $i, 1);
      if (!$q && substr($line, $i, 2) eq "--") { $comment = substr($line, $i + 2); last; }
      $q = !$q if $c eq "\x27";
      $code .= $c;
    }
    $code =~ s/\s+$//; $comment =~ s/^\s+|\s+$//g;
    next if $code eq "" && !defined $buf;    # prose or blank line
    $buf = defined $buf ? "$buf\n$code" : $code;
    if ($code =~ /;$/ || $code =~ /^\\/) { push @stmts, [$buf, $comment]; undef $buf; }
  }
  push @stmts, [$buf, "UNTERMINATED"] if defined $buf;
  open(my $p, ">", $psql) or die; open(my $e, ">", $expect) or die;
  my $n = 0;
  for my $s (@stmts) {
    my ($sql, $c) = @$s; $n++;
    my ($kind, $want) = ("succeeds", "");
    if ($c eq "UNTERMINATED") { ($kind, $want) = ("unterminated", ""); }
    elsif ($c =~ /:\s*([0-9A-Z]{5})$/) { ($kind, $want) = ("raises", $1); }
    elsif ($c =~ /^(-?[0-9].*?)\s*(?:$|,|\(|;|: )/) { ($kind, $want) = ("returns", $1); }
    elsif ($c =~ /\b(?:entry|seal) ([0-9]+)\b/) { ($kind, $want) = ("returns", $1); }
    elsif ($c =~ /\bok = true\b/) { ($kind, $want) = ("all_ok", ""); }
    (my $flat = $sql) =~ s/\s*\n\s*/ /g;
    print $e join("\x1f", $n, $kind, $want, $flat), "\n";
    print $p "$sql\n\\echo \@\@ $n :SQLSTATE\n" unless $kind eq "unterminated";
  }
' "$README" "$work/tour.psql" "$work/expect" || { echo "not ok - reading the tour from $README"; echo "readme_tour: 0 passed, 1 failed"; exit 1; }

n_stmts=$(wc -l <"$work/expect")
n_claims=$(grep -cP '^\d+\x1f(returns|all_ok|raises)\x1f' "$work/expect")
check "README's Getting started has a SQL tour ($n_stmts statements)" test "$n_stmts" -ge 10
check "the tour states results to check ($n_claims)" test "$n_claims" -ge 10

"$PGBIN/dropdb" --if-exists "$DB" >/dev/null 2>&1
"$PGBIN/createdb" "$DB" || { echo "not ok - createdb $DB"; echo "readme_tour: $pass passed, $((fail + 1)) failed"; exit 1; }
if ! head -n 1 "$work/expect" | cut -d $'\x1f' -f 4 | grep -qiE '^CREATE EXTENSION carbon_ledger;$'; then
  check "CREATE EXTENSION carbon_ledger (not in the tour: done first)" \
    psql -X -q -d "$DB" -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION carbon_ledger'
fi

# One session, errors do not stop it; results unaligned, columns " | ".
{ printf '%s\n' '\set ON_ERROR_STOP off' '\pset format unaligned' "\\pset fieldsep ' | '" '\pset footer off'
  cat "$work/tour.psql"; } >"$work/run.psql"
psql -X -q -d "$DB" -v VERBOSITY=verbose -f "$work/run.psql" >"$work/out" 2>"$work/err"
check "psql ran the whole tour (every statement reported back)" \
  test "$(grep -c '^@@ ' "$work/out")" -eq "$(grep -vcP '^\d+\x1funterminated\x1f' "$work/expect")"

# $work/out → $work/res.N (what statement N printed: header, then rows) and
# $work/state.N (its SQLSTATE, 00000 when it succeeded)
awk -v dir="$work" '
  /^@@ [0-9]+ / { n = $2; print $3 > (dir "/state." n); close(dir "/state." n)
                  printf "%s", buf > (dir "/res." n); close(dir "/res." n); buf = ""; next }
  { buf = buf $0 "\n" }' "$work/out"

state_is() { test "$(cat "$work/state.$1" 2>/dev/null)" = "$2"; }
rows_are() { # statement, expected single row
  local res="$work/res.$1"
  [ -f "$res" ] && [ "$(wc -l <"$res")" -eq 2 ] && [ "$(sed -n 2p "$res")" = "$2" ]
}
all_ok() { # statement: a column "ok", at least one row, all t
  local res="$work/res.$1"
  [ -f "$res" ] && awk -F ' [|] ' '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "ok") c = i; next }
    { rows++; if (!c || $c != "t") bad = 1 }
    END { exit !(c && rows > 0 && !bad) }' "$res"
}

while IFS=$'\x1f' read -r n kind want sql; do
  before=$fail
  case $kind in
    unterminated) check "statement $n is terminated by ';': $sql" false; continue ;;
    raises) check "$sql raises $want" state_is "$n" "$want" ;;
    *) check "$sql succeeds" state_is "$n" 00000 ;;
  esac
  case $kind in
    returns) check "$sql returns $want" rows_are "$n" "$want" ;;
    all_ok) check "$sql returns rows, all ok = true" all_ok "$n" ;;
  esac
  if [ "$fail" -ne "$before" ]; then
    echo "#   statement $n SQLSTATE $(cat "$work/state.$n" 2>/dev/null), printed:"; sed 's/^/#     /' "$work/res.$n" 2>/dev/null
  fi
done <"$work/expect"
[ "$fail" -eq 0 ] || { echo "# psql's messages:"; sed 's/^/#   /' "$work/err"; }

echo "readme_tour: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
