"""
What an application does with psycopg 3 (Debian's python3-psycopg), as JSON: run by test/python-drivers.test.ts
once on direct connections and once through pgmux, with WORKERS threads each on its own connection, and the two
transcripts compared. Everything recorded is what the application sees: rows, column names and type OIDs, status
messages, row counts, SQLSTATEs and messages, parameter statuses, transaction status.

usage: psycopg_workload.py DATABASE_URL WORKERS
"""
import datetime
import decimal
import json
import sys

import psycopg

from threaded import run_threads

URL = sys.argv[1]
WORKERS = int(sys.argv[2])


def plain(v):
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, decimal.Decimal)):
        return repr(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    return str(v)


def worker(i, out):
    log = []

    def rec(tag, value):
        log.append([tag, json.loads(json.dumps(value, default=plain))])

    def error(e):
        return ['ERROR', type(e).__name__, getattr(e, 'sqlstate', None), str(e).split('\n')[0]]

    def attempt(tag, f):
        try:
            rec(tag, f())
        except Exception as e:  # noqa: BLE001 - what the application would see, whatever it is
            rec(tag, error(e))

    def result(cur):
        desc = None if cur.description is None else [[c.name, c.type_code] for c in cur.description]
        rows = cur.fetchall() if cur.description is not None else None
        return [cur.statusmessage, cur.rowcount, desc, rows]

    zone = ['America/Los_Angeles', 'Asia/Tokyo', 'Europe/Paris', 'UTC'][i % 4]
    # psycopg parses timestamps in the ISO output styles only; the input order still varies.
    style = ['ISO, DMY', 'ISO, MDY', 'ISO, YMD', 'ISO, MDY'][i % 4]
    autocommit = i % 2 == 0
    t = f'psy_{i}'
    with psycopg.connect(URL, options=f'-c TimeZone={zone.replace(" ", "")} -c DateStyle={style.replace(" ", "")}', application_name=f'psy{i}', autocommit=autocommit) as conn:
        rec('startup', [conn.info.parameter_status(p) for p in ('TimeZone', 'DateStyle', 'application_name', 'integer_datetimes')])
        conn.execute(f'drop table if exists {t}')
        conn.execute(f'create table {t} (id int primary key, v text, ts timestamptz, n numeric)')
        conn.commit()
        attempt('zone', lambda: result(conn.execute("select '2001-02-03 04:05:06+00'::timestamptz, '2001-02-03 04:05:06+00'::timestamptz::text, current_setting('application_name')")))
        # prepare_threshold (5): from the sixth execution psycopg prepares the query under a name of its own.
        for k in range(8):
            attempt(f'auto-prepared {k}', lambda: result(conn.execute('select %s::int + 1 as n, current_setting(%s) as zone', [k, 'TimeZone'])))
        attempt('prepare=True', lambda: result(conn.execute('select %s::text || %s as s', ['a', 'b'], prepare=True)))
        conn.commit()
        attempt('set', lambda: result(conn.execute('set search_path = pg_catalog, public')))
        conn.commit()
        attempt('set stays', lambda: result(conn.execute('show search_path')))
        attempt('set local', lambda: result(conn.execute("select set_config('work_mem', '7MB', true)")))
        conn.commit()
        attempt('set local gone', lambda: result(conn.execute('show work_mem')))
        conn.commit()
        with conn.cursor() as cur:
            attempt('executemany', lambda: cur.executemany(f'insert into {t} (id, v, ts, n) values (%s, %s, %s, %s)',
                                                          [(n, f'v{n}', datetime.datetime(2020, 1, 1, n, tzinfo=datetime.timezone.utc), decimal.Decimal(n) / 3) for n in range(10)]))
            attempt('executemany rowcount', lambda: cur.rowcount)
        conn.commit()
        attempt('rows', lambda: result(conn.execute(f'select id, v, ts, ts::text, n from {t} order by id')))
        try:
            with conn.pipeline():
                conn.execute('select 1')
                conn.execute('select %s::int / 0', [i])
                conn.execute('select 3')
        except psycopg.Error as e:
            rec('pipeline error', error(e))
        conn.rollback()
        rec('after pipeline error', str(conn.info.transaction_status))
        with conn.pipeline() as p:
            curs = [conn.execute('select %s::int * 2 as d', [n]) for n in range(5)]
            p.sync()
            rec('pipeline', [c.fetchall() for c in curs])
        conn.commit()
        with conn.transaction():
            attempt('insert', lambda: result(conn.execute(f"insert into {t} values (100, 'x', now(), 1)")))
            try:
                with conn.transaction():
                    conn.execute(f"insert into {t} values (100, 'dup', now(), 2)")
            except psycopg.Error as e:
                rec('savepoint error', error(e))
            attempt('after savepoint', lambda: result(conn.execute(f'select count(*) from {t}')))
        with conn.transaction():
            with conn.cursor(name=f'ssc_{i}') as sc:
                sc.execute(f'select id, v from {t} order by id')
                rec('server-side cursor', [sc.fetchmany(3), sc.fetchmany(3), [[c.name, c.type_code] for c in sc.description]])
        with conn.cursor() as cur:
            with cur.copy(f'copy {t} (id, v) from stdin') as copy:
                for n in range(200, 210):
                    copy.write_row((n, f'c{n}'))
            rec('copy in', [cur.statusmessage, cur.rowcount])
            conn.commit()
            with cur.copy(f'copy (select id, v from {t} where id >= 200 order by id) to stdout') as copy:
                rec('copy out', [bytes(row).decode() for row in copy])
            with cur.copy(f'copy {t} (id, v) from stdin (format binary)') as copy:
                copy.set_types(['int4', 'text'])
                for n in range(300, 303):
                    copy.write_row((n, f'b{n}'))
            conn.commit()
            try:
                with cur.copy(f'copy {t} (id, v) from stdin') as copy:
                    copy.write_row((1, 'duplicate'))
            except psycopg.Error as e:
                rec('copy error', error(e))
            conn.rollback()
        with conn.cursor(binary=True) as cur:
            attempt('binary', lambda: result(cur.execute(f'select id, v, ts, n from {t} where id < 3 order by id')))
        conn.commit()
        with psycopg.ClientCursor(conn) as cc:
            attempt('client-side binding', lambda: result(cc.execute('select %s as s, %s::date as d', ["o'k", datetime.date(2020, 2, 3)])))
        conn.commit()
        attempt('division by zero', lambda: result(conn.execute('select 1/0')))
        rec('status after error', str(conn.info.transaction_status))
        conn.rollback()
        attempt('after error', lambda: result(conn.execute("select 42, current_setting('DateStyle'), current_setting('TimeZone')")))
        conn.commit()
        attempt('syntax error', lambda: result(conn.execute('selec 1')))
        conn.rollback()
        attempt('undefined table', lambda: result(conn.execute('select * from no_such_table')))
        conn.rollback()
        attempt('reset all', lambda: result(conn.execute('reset all')))
        conn.commit()
        attempt('after reset all', lambda: result(conn.execute("select current_setting('DateStyle'), current_setting('TimeZone'), current_setting('search_path'), current_setting('application_name')")))
        conn.commit()
        conn.execute(f'drop table {t}')
        conn.commit()
    out[i] = log


run_threads(worker, WORKERS)
