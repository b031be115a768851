#!/usr/bin/env python3
"""The nightly cross-check's nine checks in DuckDB SQL: the peer `doudi crosscheck` is measured against.

What an analyst would write in an afternoon: the register (`register.jsonl`, as `doudi gen` writes it
and `doudi import` loads it) and the night's snapshot files read straight by DuckDB, the same nine
checks with the default `crosscheck` configuration, the findings written as CSV. The logic follows
`crates/crosscheck/src/checks.rs` and `aggregate.rs`:

- snapshot ID numbers are matched as doudi matches them: trimmed, an `x` read as `X`, a legacy
  15-digit number upgraded (`19` inserted, the check character computed); a register ID number held
  by two members belongs to the first (households in `household_id` order, members in order);
- deaths on or before the night count; a payment to the member's own household for a month after
  the death (after the last death, for a household whose members all died) is an overpayment;
- vehicles other than agricultural, motorcycles and tricycles valued above 50,000 yuan; more than
  one home (distinct certificate numbers) or any non-residential property; an active company with
  the member as legal representative or a capital above 100,000 yuan; per-capita wages (the
  household's wages of the month divided by its size, rounded toward zero) above the line
  (961 yuan urban, 732 rural) in each of the 3 months before the night's month, for 低保 and 特困
  households; a member paid under another household number, or sharing an ID number with another
  register member; a member absent from the hukou roll, or there with another name or birth date.

Usage (DuckDB from PyPI: `python3 -m venv /tmp/doudi-duckdb && /tmp/doudi-duckdb/bin/pip install duckdb`):

    python3 benches/crosscheck_duckdb.py --data DIR [--threads N] [--out FINDINGS.csv]
    python3 benches/crosscheck_duckdb.py --data DIR --compare REPORT_DIR/findings.csv

`DIR` is what `doudi gen --out DIR` wrote (DIR/register.jsonl, DIR/snapshots/). It prints the time
and the findings per check; with `--compare` it also checks that doudi's report (`doudi crosscheck
--out REPORT_DIR`, open findings) has exactly the same findings: by check, household, member and
amount at stake. Exit status 1 when they differ.
"""

import argparse
import csv
import json
import os
import re
import sys
import time

import duckdb

KINDS = ["deaths", "hukou", "vehicles", "properties", "companies", "wages", "payments"]

# Column types per kind (as in crates/crosscheck/src/snapshot.rs).
COLUMNS = {
    "deaths": {"record_id": "VARCHAR", "id_number": "VARCHAR", "name": "VARCHAR",
               "death_date": "DATE", "region_code": "VARCHAR"},
    "hukou": {"id_number": "VARCHAR", "name": "VARCHAR", "sex": "VARCHAR",
              "birth_date": "DATE", "region_code": "VARCHAR"},
    "vehicles": {"plate": "VARCHAR", "id_number": "VARCHAR", "vehicle_type": "VARCHAR",
                 "value_fen": "BIGINT", "registered_on": "DATE"},
    "properties": {"certificate_no": "VARCHAR", "id_number": "VARCHAR", "usage": "VARCHAR",
                   "area_m2": "BIGINT", "value_fen": "BIGINT", "region_code": "VARCHAR",
                   "registered_on": "DATE"},
    "companies": {"credit_code": "VARCHAR", "company_name": "VARCHAR", "id_number": "VARCHAR",
                  "role": "VARCHAR", "registered_capital_fen": "BIGINT", "status": "VARCHAR"},
    "wages": {"id_number": "VARCHAR", "month": "VARCHAR", "employer": "VARCHAR",
              "wage_fen": "BIGINT"},
    "payments": {"payment_id": "VARCHAR", "household_id": "VARCHAR", "region_code": "VARCHAR",
                 "id_number": "VARCHAR", "category": "VARCHAR", "month": "VARCHAR",
                 "amount_fen": "BIGINT"},
}

# The default CheckConfig of doudi-crosscheck.
VEHICLE_MAX_FEN = 5_000_000
VEHICLE_EXEMPT = ("agricultural", "motorcycle", "tricycle")
COMPANY_MAX_CAPITAL_FEN = 10_000_000
INCOME_MONTHS = 3
GRACE_MONTHS = 6
LINE_URBAN_FEN = 96_100
LINE_RURAL_FEN = 73_200


def classify(name):
    """doudi's rule: `<kind>[-_.anything].csv|.jsonl|.ndjson`."""
    if "." not in name:
        return None
    stem, ext = name.rsplit(".", 1)
    ext = ext.lower()
    fmt = "csv" if ext == "csv" else "jsonl" if ext in ("jsonl", "ndjson") else None
    kind = re.split(r"[-_.]", stem)[0]
    return (kind, fmt) if fmt and kind in KINDS else None


def q(s):
    return "'" + s.replace("'", "''") + "'"


def source(kind, files):
    """A SQL relation of every file of `kind` (CSV and JSONL alike)."""
    cols = COLUMNS[kind]
    parts = []
    csvs = [f for f, fmt in files if fmt == "csv"]
    jsonls = [f for f, fmt in files if fmt == "jsonl"]
    names = ", ".join(cols)
    if csvs:
        types = "{" + ", ".join(f"{q(c)}: {q(t)}" for c, t in cols.items()) + "}"
        parts.append(
            f"SELECT {names} FROM read_csv([{', '.join(map(q, csvs))}], header = true, "
            f"union_by_name = true, types = {types}, auto_detect = true)"
        )
    if jsonls:
        spec = "{" + ", ".join(f"{q(c)}: {q(t)}" for c, t in cols.items()) + "}"
        parts.append(
            f"SELECT {names} FROM read_json([{', '.join(map(q, jsonls))}], "
            f"format = 'newline_delimited', columns = {spec})"
        )
    return "(" + " UNION ALL ".join(parts) + ")"


def month_minus(month, n):
    y, m = map(int, month.split("-"))
    k = y * 12 + (m - 1) - n
    return f"{k // 12:04d}-{k % 12 + 1:02d}"


def run(data, threads, as_of=None):
    snap = os.path.join(data, "snapshots")
    if as_of is None:
        with open(os.path.join(snap, "manifest.json"), encoding="utf-8") as f:
            as_of = json.load(f)["as_of"]
    files = {k: [] for k in KINDS}
    for name in sorted(os.listdir(snap)):
        c = classify(name)
        if c:
            files[c[0]].append((os.path.join(snap, name), c[1]))

    t0 = time.perf_counter()
    db = duckdb.connect(":memory:")
    db.execute(f"SET threads = {int(threads)}")
    db.execute("SET preserve_insertion_order = false")
    # A snapshot ID number as doudi normalises it (NULL when it cannot be one).
    db.execute("""
        CREATE MACRO id_check(s17) AS substr('10X98765432', (list_sum(list_transform(range(17),
            lambda i: TRY_CAST(substr(s17, i + 1, 1) AS INTEGER)
                 * [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2][i + 1])) % 11)::INTEGER + 1, 1)
    """)
    db.execute("""
        CREATE MACRO norm_id(s) AS CASE length(trim(s))
            WHEN 18 THEN upper(trim(s))
            WHEN 15 THEN (substr(trim(s), 1, 6) || '19' || substr(trim(s), 7, 9))
                         || id_check(substr(trim(s), 1, 6) || '19' || substr(trim(s), 7, 9))
            END
    """)
    register = os.path.join(data, "register.jsonl")
    db.execute(f"""
        CREATE TABLE hh AS
        SELECT row_number() OVER (ORDER BY household_id) - 1 AS hi, household_id, region_code,
               category, area, coalesce(monthly_benefit_fen, 0) AS benefit, len(members) AS size,
               members
        FROM read_json({q(register)}, format = 'newline_delimited', columns = {{
            household_id: 'VARCHAR', region_code: 'VARCHAR', category: 'VARCHAR', area: 'VARCHAR',
            monthly_benefit_fen: 'BIGINT',
            members: 'STRUCT(member_id VARCHAR, id_number VARCHAR, name VARCHAR, birth_date DATE)[]'}})
    """)
    db.execute("""
        CREATE TABLE mem AS
        SELECT row_number() OVER (ORDER BY hi, pos) - 1 AS mi, hi, m.member_id AS member_id,
               m.id_number AS id, m.name AS name, m.birth_date AS birth_date
        FROM (SELECT hi, unnest(members) AS m, generate_subscripts(members, 1) AS pos FROM hh)
    """)
    # The register's index: an ID number belongs to its first member.
    db.execute("CREATE TABLE ids AS SELECT id, min(mi) AS mi, arg_min(hi, mi) AS hi FROM mem GROUP BY id")

    def matched(kind, cols):
        return (f"SELECT ids.mi, ids.hi, {cols} FROM {source(kind, files[kind])} s "
                f"JOIN ids ON ids.id = norm_id(s.id_number)")

    have = {k: bool(files[k]) for k in KINDS}
    out = []  # (check, household_id, member_id or '', amount_fen)

    if have["deaths"]:
        db.execute(f"""CREATE TABLE deaths AS SELECT mi, hi, min(death_date) AS death_date
            FROM ({matched('deaths', 'death_date')}) WHERE death_date <= DATE {q(as_of)}
            GROUP BY mi, hi""")
        db.execute("""CREATE TABLE all_dead AS SELECT d.hi, max(d.death_date) AS last
            FROM deaths d JOIN hh USING (hi) GROUP BY d.hi, hh.size HAVING count(*) >= hh.size""")
    if have["payments"]:
        db.execute(f"""CREATE TABLE pay AS SELECT s.mi, s.hi, s.household_id = hh.household_id AS own,
                s.month, s.amount_fen
            FROM ({matched('payments', 'trim(household_id) AS household_id, trim(month) AS month, amount_fen')}) s
            JOIN hh USING (hi)""")
    else:
        db.execute("CREATE TABLE pay (mi BIGINT, hi BIGINT, own BOOLEAN, month VARCHAR, amount_fen BIGINT)")

    if have["deaths"]:
        out += db.execute("""
            WITH over AS (SELECT p.mi, sum(p.amount_fen) AS amount FROM pay p JOIN deaths d USING (mi)
                          WHERE p.own AND p.month > strftime(d.death_date, '%Y-%m') GROUP BY p.mi)
            SELECT 'deceased_still_paid', hh.household_id, m.member_id, coalesce(o.amount, 0)
            FROM deaths d JOIN mem m USING (mi) JOIN hh ON hh.hi = d.hi LEFT JOIN over o USING (mi)
            WHERE hh.benefit <> 0 OR o.mi IS NOT NULL""").fetchall()
        out += db.execute("""
            WITH orphan AS (SELECT p.hi, sum(p.amount_fen) AS amount FROM pay p JOIN all_dead a USING (hi)
                            WHERE p.own AND p.month > strftime(a.last, '%Y-%m') GROUP BY p.hi)
            SELECT 'no_living_member', hh.household_id, '', coalesce(o.amount, 0)
            FROM all_dead a JOIN hh USING (hi) LEFT JOIN orphan o USING (hi)""").fetchall()
    if have["vehicles"]:
        exempt = ", ".join(map(q, VEHICLE_EXEMPT))
        out += db.execute(f"""
            SELECT 'disqualifying_vehicle', hh.household_id, '', hh.benefit * 12 FROM hh
            WHERE hi IN (SELECT hi FROM ({matched('vehicles', 'vehicle_type, value_fen')})
                         WHERE trim(vehicle_type) NOT IN ({exempt}) AND value_fen > {VEHICLE_MAX_FEN})
            """).fetchall()
    if have["properties"]:
        out += db.execute(f"""
            WITH p AS (SELECT hi, count(DISTINCT trim(certificate_no)) FILTER (WHERE usage = 'residential') AS homes,
                              count(*) FILTER (WHERE usage <> 'residential') AS other
                       FROM ({matched('properties', 'certificate_no, trim(usage) AS usage')}) GROUP BY hi)
            SELECT 'disqualifying_property', hh.household_id, '', hh.benefit * 12
            FROM p JOIN hh USING (hi) WHERE p.homes > 1 OR p.other > 0""").fetchall()
    if have["companies"]:
        out += db.execute(f"""
            SELECT 'disqualifying_company', hh.household_id, '', hh.benefit * 12 FROM hh
            WHERE hi IN (SELECT hi FROM ({matched('companies', 'role, registered_capital_fen, status')})
                         WHERE trim(status) = 'active' AND (trim(role) = 'legal_representative'
                               OR registered_capital_fen > {COMPANY_MAX_CAPITAL_FEN}))""").fetchall()
    if have["wages"]:
        night = as_of[:7]
        first, last = month_minus(night, INCOME_MONTHS), month_minus(night, 1)
        out += db.execute(f"""
            WITH w AS (SELECT hi, trim(month) AS month, sum(wage_fen) AS wage
                       FROM ({matched('wages', 'month, wage_fen')})
                       WHERE trim(month) BETWEEN {q(first)} AND {q(last)} GROUP BY hi, trim(month))
            SELECT 'income_above_line', hh.household_id, '', hh.benefit * {GRACE_MONTHS}
            FROM w JOIN hh USING (hi)
            WHERE hh.category IN ('dibao', 'tekun')
            GROUP BY hh.household_id, hh.benefit
            HAVING count(*) FILTER (WHERE (w.wage // hh.size) >
                   CASE hh.area WHEN 'urban' THEN {LINE_URBAN_FEN} ELSE {LINE_RURAL_FEN} END) = {INCOME_MONTHS}
            """).fetchall()
    if have["payments"]:
        out += db.execute("""
            WITH foreign_paid AS (SELECT mi, sum(amount_fen) AS amount FROM pay WHERE NOT own GROUP BY mi),
                 repeated AS (SELECT m.mi FROM mem m JOIN (SELECT id FROM mem GROUP BY id HAVING count(*) > 1) USING (id)),
                 subject AS (SELECT mi FROM foreign_paid UNION SELECT mi FROM repeated)
            SELECT 'duplicate_enrolment', hh.household_id, m.member_id, coalesce(f.amount, 0)
            FROM subject s JOIN mem m USING (mi) JOIN hh USING (hi) LEFT JOIN foreign_paid f USING (mi)
            """).fetchall()
    if have["hukou"]:
        db.execute(f"""CREATE TABLE hk AS SELECT s.mi, bool_or(trim(s.name) <> trim(m.name)) AS name_differs,
                bool_or(s.birth_date <> m.birth_date) AS birth_differs
            FROM ({matched('hukou', 'name, birth_date')}) s JOIN mem m USING (mi) GROUP BY s.mi""")
        out += db.execute("""
            SELECT CASE WHEN k.mi IS NULL THEN 'id_unknown_to_hukou' ELSE 'hukou_mismatch' END,
                   hh.household_id, m.member_id, (hh.benefit // greatest(hh.size, 1)) * 12
            FROM mem m JOIN hh USING (hi) LEFT JOIN hk k USING (mi)
            WHERE k.mi IS NULL OR k.name_differs OR k.birth_differs""").fetchall()
    elapsed = time.perf_counter() - t0
    out = sorted((c, h, m or "", int(a)) for c, h, m, a in out)
    return out, elapsed


def doudi_findings(path):
    """The open findings of doudi's findings.csv, as (check, household, member, amount in fen)."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if r["status"] == "closed":
                continue
            y = r["amount_at_stake_yuan"]
            sign = -1 if y.startswith("-") else 1
            whole, _, frac = y.lstrip("-").partition(".")
            fen = sign * (int(whole) * 100 + int((frac + "00")[:2]))
            rows.append((r["check"], r["household_id"], r["member_id"], fen))
    return sorted(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="what `doudi gen --out DIR` wrote")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--as-of", help="the night (default: snapshots/manifest.json's as_of)")
    ap.add_argument("--out", help="write the findings here (CSV)")
    ap.add_argument("--compare", help="doudi's findings.csv: check the findings are the same")
    a = ap.parse_args()
    found, elapsed = run(a.data, a.threads, a.as_of)
    by = {}
    for c, _, _, amount in found:
        n, s = by.get(c, (0, 0))
        by[c] = (n + 1, s + amount)
    print(f"duckdb {duckdb.__version__}, threads={a.threads}: {len(found)} findings in {elapsed:.2f} s")
    for c in sorted(by):
        print(f"  {c:<28} {by[c][0]:>7}   at stake {by[c][1] / 100:>16.2f} yuan")
    if a.out:
        with open(a.out, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["check", "household_id", "member_id", "amount_fen"])
            w.writerows(found)
    if a.compare:
        theirs = doudi_findings(a.compare)
        mine, other = set(found), set(theirs)
        if mine == other and len(found) == len(theirs):
            print(f"same findings as {a.compare}: {len(found)}")
        else:
            only_d, only_o = sorted(mine - other), sorted(other - mine)
            print(f"DIFFERENT from {a.compare}: {len(only_d)} only here, {len(only_o)} only in doudi's")
            for r in only_d[:10]:
                print("  only here:", r)
            for r in only_o[:10]:
                print("  only doudi:", r)
            sys.exit(1)


if __name__ == "__main__":
    main()
