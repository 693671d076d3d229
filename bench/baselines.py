"""The benchmark's baselines: the same documents in Whoosh and in SQLite FTS5, the same
queries on them.

- Whoosh the straightforward way: facets and free text as Whoosh fields, facet counts
  from ``groupedby``.
- SQLite FTS5 with facet counts by ``GROUP BY``, as Datasette does.

bench_search.py builds both from the generated listing and prints our medians as ratios
to theirs, flagging any difference in the number of hits.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from common import dir_size, timed

from searcher.documents import word_terms
from searcher.schema import FACETS
from searcher.sources import find_pages, iter_pages


def spec_text(spec) -> str:
    """A spec's free text as the baselines index it: the same terms we derive."""
    values = [v for vals in spec.facet_values().values() for v in vals] + [spec.compiler]
    return " ".join(dict.fromkeys(t for v in values for t in word_terms(v)))


def all_specs(source: Path):
    for page in iter_pages(find_pages(source)):
        yield from getattr(page, "specs", [])


def build_whoosh_baseline(source: Path, directory: Path) -> dict:
    """Whoosh the straightforward way: facets and free text as Whoosh fields."""
    from whoosh import fields, index

    facet_fields = {f.name: fields.KEYWORD(lowercase=False, commas=False) for f in FACETS}
    schema = fields.Schema(
        id=fields.ID(unique=True),
        hash=fields.ID(),
        name=fields.KEYWORD(lowercase=True, scorable=True),
        text=fields.KEYWORD(lowercase=True, scorable=True),
        doc=fields.STORED(),
        **facet_fields,
    )
    directory.mkdir(parents=True)
    ix = index.create_in(str(directory), schema)
    writer = ix.writer(limitmb=256)
    count = 0
    start = time.perf_counter()
    for spec in all_specs(source):
        values = {k: " ".join(v) for k, v in spec.facet_values().items()}
        writer.add_document(
            id=spec.id,
            hash=spec.hash,
            name=" ".join(spec.name_terms()),
            text=spec_text(spec),
            doc=spec.to_row(),
            **values,
        )
        count += 1
    writer.commit()
    seconds = time.perf_counter() - start
    return {"ix": ix, "specs_per_s": count / seconds, "index_mb": dir_size(directory) / 2**20}


def whoosh_query(params: list[tuple[str, str]]):
    from whoosh import query as wq

    parts, filters, page = [], {}, 1
    for key, value in params:
        if key == "q":
            word = value.lower()
            make = wq.Prefix if word.endswith("*") else wq.Term
            word = word.rstrip("*")
            alternatives = [make("name", word, boost=4.0), make("text", word)]
            if len(word) >= 7 and word.isalnum():
                alternatives.append(wq.Prefix("hash", word))
            parts.append(wq.Or(alternatives))
        elif key == "page":
            page = int(value)
        else:
            filters.setdefault(key, []).append(value)
    for facet, values in filters.items():
        parts.append(wq.Or([wq.Term(facet, v) for v in values]))
    return (wq.And(parts) if parts else wq.Every()), page


def bench_whoosh(ix, mix, repeat: int) -> tuple[dict, dict]:
    from whoosh import sorting

    groupedby = {
        f.name: sorting.FieldFacet(f.name, allow_overlap=f.multi, maptype=sorting.Count)
        for f in FACETS
    }
    rows, totals = {}, {}
    with ix.searcher() as searcher:
        for name, params in mix:
            q, page = whoosh_query(params)

            def run(q=q, page=page):
                results = searcher.search_page(q, page, pagelen=20, groupedby=groupedby)
                body = {
                    "total": results.total,
                    "hits": [list(hit["doc"]) for hit in results],
                    "facets": {f: results.results.groups(f) for f in groupedby},
                }
                json.dumps(body)
                return results.total

            totals[name] = run()
            rows[name] = timed(run, repeat, warmup=1)
    return rows, totals


SQLITE_SCHEMA = """
create table specs (id integer primary key, doc text, {columns});
create table spec_values (spec integer, facet text, value text);
create virtual table fts using fts5(text, hash, tokenize="unicode61 tokenchars '-_.@=:+~'");
"""


def build_sqlite(source: Path, path: Path) -> dict:
    """SQLite FTS5 for text, one column per single-valued facet, a table for the others."""

    single = [f.name for f in FACETS if not f.multi]
    db = sqlite3.connect(path)
    db.executescript(SQLITE_SCHEMA.format(columns=", ".join(single)))
    start = time.perf_counter()
    rows, values, texts = [], [], []
    for number, spec in enumerate(all_specs(source), 1):
        facet_values = spec.facet_values()
        rows.append((number, json.dumps(spec.to_row()), *(facet_values[f][0] for f in single)))
        values += [(number, f, v) for f in ("stack", "variant") for v in facet_values[f]]
        texts.append((number, spec_text(spec), spec.hash))
    marks = ", ".join("?" * (2 + len(single)))
    db.executemany(f"insert into specs values ({marks})", rows)
    db.executemany("insert into spec_values values (?, ?, ?)", values)
    db.executemany("insert into fts (rowid, text, hash) values (?, ?, ?)", texts)
    for f in single:
        db.execute(f"create index specs_{f} on specs ({f})")
    db.execute("create index spec_values_fv on spec_values (facet, value, spec)")
    db.execute("create index spec_values_spec on spec_values (spec, facet)")
    db.commit()
    seconds = time.perf_counter() - start
    return {"db": db, "specs_per_s": len(rows) / seconds, "index_mb": path.stat().st_size / 2**20}


def sqlite_where(params: list[tuple[str, str]]) -> tuple[str, list, int]:
    """(WHERE clause over specs, its arguments, page) for a query class."""
    clauses, args, filters, page = [], [], {}, 1
    for key, value in params:
        if key == "q":
            word = value.lower()
            token = '"' + word.rstrip("*").replace('"', '""') + '"'
            token += "*" if word.endswith("*") else ""
            match = f"text : {token}"
            if len(word) >= 7 and word.isalnum():
                match = f"({match}) OR (hash : {token}*)"
            clauses.append("id in (select rowid from fts where fts match ?)")
            args.append(match)
        elif key == "page":
            page = int(value)
        else:
            filters.setdefault(key, []).append(value)
    for facet, values in filters.items():
        marks = ", ".join("?" * len(values))
        if facet in ("stack", "variant"):
            clauses.append(
                f"id in (select spec from spec_values where facet = ? and value in ({marks}))"
            )
            args += [facet, *values]
        else:
            clauses.append(f"{facet} in ({marks})")
            args += values
    return (" and ".join(clauses) or "1"), args, page


def bench_sqlite(db, mix, repeat: int) -> tuple[dict, dict]:
    rows, totals = {}, {}
    for name, params in mix:
        where, args, page = sqlite_where(params)

        def run(where=where, args=args, page=page):
            total = db.execute(f"select count(*) from specs where {where}", args).fetchone()[0]
            hits = db.execute(
                f"select doc from specs where {where} order by id limit 20 offset ?",
                [*args, (page - 1) * 20],
            ).fetchall()
            facets = {}
            for facet in FACETS:
                if facet.multi:
                    sql = (
                        "select value, count(*) c from spec_values where facet = ? and spec in "
                        f"(select id from specs where {where}) group by value "
                        "order by c desc limit 20"
                    )
                    facets[facet.name] = db.execute(sql, [facet.name, *args]).fetchall()
                else:
                    sql = (
                        f"select {facet.name}, count(*) c from specs where {where} "
                        f"group by {facet.name} order by c desc limit 20"
                    )
                    facets[facet.name] = db.execute(sql, args).fetchall()
            json.dumps({"total": total, "hits": hits, "facets": facets})
            return total

        totals[name] = run()
        rows[name] = timed(run, repeat, warmup=1)
    return rows, totals
